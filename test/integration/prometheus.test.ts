// A real Prometheus (Debian's `prometheus` package) scrapes a real gateway every second,
// with the scrape config and alert rules shipped in resources/prometheus/, and answers
// the lab's own PromQL with what the test sent through fake upstreams.
//
// Why the numbers are exact although rate() extrapolates: rate() takes the increase
// between the first and last sample in the window and stretches it towards the
// window's ends. All series come from one target, so they share sample times; the
// stretch differs between series only where the "counter started at zero" limit cuts
// the start short, which happens when first value / increase < 1.1 / (samples - 1).
// So the test sends the same traffic three times before Prometheus starts (every
// counter then starts at three times its later increase), then once more while
// Prometheus watches: every counter is stretched by the same factor, and ratios of
// rates over the same window (error rate, share, fallback rate, cost per token) are
// the ratios of what was sent. Latencies differ from one round to the next, so for
// the latency histogram the test checks that limit per series from the gateway's own
// /metrics before and after: p95 equals the one computed from the sent buckets when
// it holds, and falls in the same bucket when it cannot (a bucket the first rounds
// never reached).
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { useLab } from "../fixtures/lab.ts";
import { PROMETHEUS, PROMTOOL, prometheusInstalled as installed, query, until, usePrometheus, type PromMatrix, type RunningPrometheus } from "../fixtures/prometheus.ts";

const RESOURCES = resolve(dirname(fileURLToPath(import.meta.url)), "../../resources/prometheus");
const inCI = process.env.CI === "true";
if (!installed && !inCI) {
  console.warn(`prometheus.test.ts: skipped, ${PROMETHEUS} or ${PROMTOOL} is missing (apt-get install prometheus)`);
}

const MASTER_KEY = "sk-master-prometheus-test";
const ADMIN_KEY = "sk-admin-prometheus-test";
const lab = useLab({ env: { LG_MASTER: MASTER_KEY, LG_ADMIN: ADMIN_KEY } });
const run = promisify(execFile);

// ---------------------------------------------------------------- /metrics text

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** router_latency_seconds buckets: cumulative count by component and upper bound. */
function latencyBuckets(samples: Sample[]): Map<string, Map<number, number>> {
  const byComponent = new Map<string, Map<number, number>>();
  for (const s of samples) {
    if (s.name !== "router_latency_seconds_bucket") continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    const c = byComponent.get(s.labels.component!) ?? new Map<number, number>();
    byComponent.set(s.labels.component!, c.set(le, s.value));
  }
  return byComponent;
}

/**
 * Prometheus's histogram_quantile on cumulative buckets (promql/quantile.go,
 * bucketQuantile): the first bucket whose count reaches q * total, linear
 * interpolation inside it, 0 as the lower end of the first bucket, and the
 * highest finite bound when the rank falls in the +Inf bucket.
 */
function bucketQuantile(q: number, buckets: [number, number][]): { value: number; index: number } {
  const last = buckets.length - 1;
  const total = buckets[last]![1];
  let rank = q * total;
  let b = buckets.findIndex(([, c], i) => i === last || c >= rank);
  if (b === last) return { value: buckets[last - 1]![0], index: last };
  let start = 0;
  let count = buckets[b]![1];
  if (b > 0) {
    start = buckets[b - 1]![0];
    count -= buckets[b - 1]![1];
    rank -= buckets[b - 1]![1];
  }
  return { value: start + (buckets[b]![0] - start) * (rank / count), index: b };
}

// ---------------------------------------------------------------- a Prometheus of our own

const prometheus = usePrometheus();
const tmp = () => prometheus.tmp();
const startPrometheus = (dir: string, config: string) => prometheus.start(dir, config);

/** One number from a query that must give exactly one series. */
async function scalar(prom: RunningPrometheus, promql: string, time: number): Promise<number> {
  const r = await query(prom, promql, time);
  expect(r, promql).toHaveLength(1);
  return Number(r[0]!.value[1]);
}

// ---------------------------------------------------------------- the tests

describe.runIf(installed || inCI)("a real Prometheus", () => {
  it("is installed (CI installs Debian's prometheus package)", () => {
    expect(installed, `${PROMETHEUS} and ${PROMTOOL} come with Debian's prometheus package (.ci/run installs it)`).toBe(true);
  });

  it.runIf(installed)("promtool accepts the shipped scrape config, alert and recording rules, and the rules pass their unit tests", async () => {
    // check config also checks the files it names: give it the key file the example expects.
    const dir = tmp();
    copyFileSync(join(RESOURCES, "prometheus.yml"), join(dir, "prometheus.yml"));
    copyFileSync(join(RESOURCES, "labgate-alerts.yml"), join(dir, "labgate-alerts.yml"));
    copyFileSync(join(RESOURCES, "labgate-recording.yml"), join(dir, "labgate-recording.yml"));
    writeFileSync(join(dir, "labgate-metrics.key"), "sk-example\n");
    const config = await run(PROMTOOL, ["check", "config", join(dir, "prometheus.yml")]);
    expect(config.stdout).toContain("SUCCESS: 2 rule files found");
    const rules = await run(PROMTOOL, ["check", "rules", join(RESOURCES, "labgate-alerts.yml"), join(RESOURCES, "labgate-recording.yml")]);
    expect(rules.stdout).toMatch(/labgate-alerts\.yml\n\s+SUCCESS: 4 rules found/);
    expect(rules.stdout).toMatch(/labgate-recording\.yml\n\s+SUCCESS: 5 rules found/);
    const tests = await run(PROMTOOL, ["test", "rules", join(RESOURCES, "labgate-alerts.test.yml")]);
    expect(tests.stdout).toContain("SUCCESS");
  });

  it.runIf(installed)(
    "scrapes a gateway with the admin key and answers the lab's queries and alerts with what the traffic did",
    async () => {
      const local = await lab.fake({ name: "local" });
      const mid = await lab.fake({ name: "mid" });
      const cloud = await lab.fake({ name: "cloud" });
      const dead = await lab.fake({ name: "dead" });
      dead.fault = { kind: "status", status: 500 };
      const price = (input_per_1m: number, output_per_1m: number) => ({ input_per_1m, output_per_1m });
      const gw = await lab.gateway({
        server: { master_key: "env:LG_MASTER", admin_key: "env:LG_ADMIN" },
        providers: {
          local: { type: "openai-compatible", base_url: local.v1 },
          mid: { type: "openai-compatible", base_url: mid.v1 },
          cloud: { type: "openai-compatible", base_url: cloud.v1 },
          dead: { type: "openai-compatible", base_url: dead.v1 },
        },
        models: {
          // local first, cloud when local fails: a fallback.
          fast: {
            strategy: "priority",
            deployments: [
              { provider: "local", model: "x", tier: "local", price: price(0, 0) },
              { provider: "cloud", model: "x", tier: "premium", price: price(2, 8) },
            ],
          },
          std: { deployments: [{ provider: "mid", model: "x", tier: "standard", price: price(0.5, 1.5) }] },
          gone: { deployments: [{ provider: "dead", model: "x", tier: "local" }] },
        },
        // One attempt per deployment; an open breaker stays open for the whole test.
        router: { retries: 0, circuit_breaker: { cooldown_s: 600 } },
      });
      const auth = { authorization: `Bearer ${MASTER_KEY}` };
      const metricsText = async () => {
        const r = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
        expect(r.status).toBe(200);
        return r.text();
      };

      interface Sent {
        status: number;
        provider: string; // who answered, or was tried last
        fallback: boolean;
        error: boolean;
        tier?: string;
        usage?: { prompt_tokens: number; completion_tokens: number };
      }
      let n = 0;
      const chat = async (model: string, expected: Omit<Sent, "usage">): Promise<Sent> => {
        n++;
        const words = Array.from({ length: 1 + (n % 5) }, (_, i) => `w${i}`).join(" "); // prompts of 1..5 tokens
        const r = await fetch(`${gw.v1}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", ...auth },
          body: JSON.stringify({ model, messages: [{ role: "user", content: words }] }),
        });
        const body = (await r.json()) as { usage?: Sent["usage"] };
        expect(r.status, `request ${n} to ${model}`).toBe(expected.status);
        return { ...expected, usage: r.status === 200 ? body.usage : undefined };
      };
      const ok = (provider: string, tier: string, fallback = false) => ({ status: 200, provider, tier, fallback, error: false });
      const failed = (provider: string, status: number, fallback = false) => ({ status, provider, fallback, error: true });

      // 17 requests: local answers 7, cloud 2 after local failed, cloud fails 1 after local
      // failed, mid answers 5 and fails 1, an unknown model 1. Local never fails twice in a
      // row, so no breaker opens on the way.
      const mix = async (): Promise<Sent[]> => {
        const sent: Sent[] = [];
        const fast = async () => sent.push(await chat("fast", ok("local", "local")));
        const std = async () => sent.push(await chat("std", ok("mid", "standard")));
        await fast();
        local.faultNext({ kind: "status", status: 500 });
        sent.push(await chat("fast", ok("cloud", "premium", true)));
        await std();
        await fast();
        local.faultNext({ kind: "status", status: 500 });
        cloud.faultNext({ kind: "status", status: 500 });
        sent.push(await chat("fast", failed("cloud", 502, true)));
        await std();
        await fast();
        mid.faultNext({ kind: "status", status: 500 });
        sent.push(await chat("std", failed("mid", 502)));
        local.faultNext({ kind: "status", status: 500 });
        sent.push(await chat("fast", ok("cloud", "premium", true)));
        await std();
        await fast();
        sent.push(await chat("no-such-model", failed("none", 404)));
        await std();
        await fast();
        await fast();
        await std();
        await fast();
        return sent;
      };

      // Before Prometheus looks: the mix three times, and 5 failures in a row on `gone`, which open
      // its breaker. Every series exists from Prometheus's first scrape on.
      await mix();
      await mix();
      await mix();
      for (let i = 0; i < 5; i++) await chat("gone", failed("dead", 502));
      const before = parseExposition(await metricsText());
      expect(before.find((s) => s.name === "router_circuit_breaker_state" && s.labels.deployment === "gone#0")?.value).toBe(2);

      // Prometheus with the shipped scrape config aimed at this gateway, scraping every
      // second with the admin key from a credentials file, and the shipped alert and
      // recording rules evaluated every second.
      const dir = tmp();
      writeFileSync(join(dir, "labgate-metrics.key"), ADMIN_KEY + "\n");
      const shipped = parseYaml(readFileSync(join(RESOURCES, "prometheus.yml"), "utf8")) as {
        global: Record<string, unknown>;
        rule_files: string[];
        scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; authorization: { credentials_file: string } }[];
      };
      const job = shipped.scrape_configs.find((j) => j.job_name === "labgate")!;
      shipped.global = { ...shipped.global, scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" };
      shipped.rule_files = shipped.rule_files.map((f) => join(RESOURCES, f));
      job.static_configs = [{ targets: [new URL(gw.url).host] }];
      job.authorization.credentials_file = join(dir, "labgate-metrics.key");
      const prom = await startPrometheus(dir, stringifyYaml(shipped));

      // Wait for a scrape of the quiet gateway: the counters' starting point.
      const now = () => Date.now() / 1000;
      const scrapes = async (): Promise<number[]> => {
        const r = await query<PromMatrix>(prom, 'up{job="labgate"}[5m]', now());
        const values = r[0]?.values ?? [];
        if (values.some(([, v]) => v !== "1")) {
          const targets = await (await fetch(`${prom.url}/api/v1/targets`)).text();
          throw new Error(`a scrape of the gateway failed: ${targets}`);
        }
        return values.map(([t]) => t);
      };
      await until("a first scrape", 10_000, async () => ((await scrapes()).length >= 1 ? true : undefined));

      // The traffic Prometheus measures: the mix once more.
      const sent = await mix();
      const after = parseExposition(await metricsText());
      const trafficEnd = now();

      // Latency buckets before and after (Prometheus's first sample is `before`: nothing
      // happened in between), and how many samples the window needs so that rate()
      // stretches the buckets around the 95th percentile by the same factor. rate() runs on
      // each component's series before the lab's query sums them by le, so that holds per
      // series, for the buckets the interpolation reads (the p95's, the one below, +Inf).
      const bucketsBefore = latencyBuckets(before);
      const bucketsAfter = latencyBuckets(after);
      const increases = [...bucketsAfter].flatMap(([component, les]) =>
        [...les].map(([le, c]) => ({ component, le, start: bucketsBefore.get(component)?.get(le) ?? 0, increase: c - (bucketsBefore.get(component)?.get(le) ?? 0) })),
      );
      const bounds = [...new Set(increases.map((x) => x.le))].sort((a, b) => a - b);
      const sentBuckets = bounds.map((le) => [le, increases.filter((x) => x.le === le).reduce((a, x) => a + x.increase, 0)] as [number, number]);
      const expectedP95 = bucketQuantile(0.95, sentBuckets);
      const aroundP95 = new Set([bounds[expectedP95.index - 1], bounds[expectedP95.index], Infinity]);
      const used = increases.filter((x) => aroundP95.has(x.le) && x.increase > 0);
      const evenStretch = (samples: number) => used.every((x) => x.start / x.increase >= 1.1 / (samples - 1));
      // Samples needed for that (never, for a series that starts at 0); worth waiting for up to 6.
      const samplesNeeded = Math.ceil(1 + Math.max(...used.map((x) => (1.1 * x.increase) / x.start)));
      const waitFor = samplesNeeded <= 6 ? samplesNeeded : 0;

      // Two scrapes after the traffic (the counters' end point, and a steady sample
      // spacing), and the samples for an even stretch when few more are needed.
      const times = await until("two scrapes after the traffic", 10_000, async () => {
        const t = await scrapes();
        return t.filter((x) => x > trafficEnd).length >= 2 && t.length >= waitFor ? t : undefined;
      });
      const at = now();
      const samplesInWindow = (await scrapes()).filter((t) => t <= at).length;

      // Expected, from what the test sent.
      const total = sent.length;
      const count = (f: (s: Sent) => boolean) => sent.filter(f).length;
      expect(total).toBe(17);
      const errors = count((s) => s.error);
      const fallbacks = count((s) => s.fallback);
      expect([errors, fallbacks]).toEqual([3, 3]);

      // Prometheus saw exactly what the gateway exposed: first and last sample of every
      // router_requests_total series are the gateway's counts before and after.
      const raw = await query<PromMatrix>(prom, "router_requests_total[5m]", at);
      for (const series of raw) {
        const first = Number(series.values[0]![1]);
        const last = Number(series.values[series.values.length - 1]![1]);
        const { provider } = series.metric;
        const find = (samples: Sample[]) =>
          samples.find((s) => s.name === "router_requests_total" && s.labels.provider === provider && s.labels.model === series.metric.model && s.labels.status === series.metric.status)?.value;
        expect([first, last], JSON.stringify(series.metric)).toEqual([find(before), find(after)]);
        expect(series.values, "every series has a sample in every scrape").toHaveLength(samplesInWindow);
      }

      // 1. Error rate.
      const errorRate = await scalar(prom, "sum(rate(router_errors_total[5m])) / sum(rate(router_requests_total[5m]))", at);
      expect(errorRate).toBeCloseTo(errors / total, 12); // 3/17

      // 2. p95 of router_latency_seconds (both components, as the lab's query sums them).
      const p95 = await scalar(prom, "histogram_quantile(0.95, sum(rate(router_latency_seconds_bucket[5m])) by (le))", at);
      const lower = expectedP95.index === 0 ? 0 : bounds[expectedP95.index - 1]!;
      const upper = bounds[expectedP95.index]!;
      expect(p95, `p95 ${p95} in the bucket of the sent traffic's p95 ${expectedP95.value}: (${lower}, ${upper}]`).toBeGreaterThan(lower);
      expect(p95).toBeLessThanOrEqual(Number.isFinite(upper) ? upper : lower);
      const even = evenStretch(samplesInWindow);
      if (even) {
        expect(Math.abs(p95 - expectedP95.value), `p95 ${p95}, from the sent buckets ${expectedP95.value}: ${JSON.stringify(used)}, ${samplesInWindow} samples`).toBeLessThanOrEqual(
          1e-9 * expectedP95.value,
        );
      }

      // 3. Traffic share by provider: the same shares as sent, and each rate is what was
      // sent over the window, stretched by at most 1.6 sample spacings.
      const share = await query(prom, "sum(rate(router_requests_total[5m])) by (provider)", at);
      const rates = Object.fromEntries(share.map((r) => [r.metric.provider!, Number(r.value[1])]));
      const sentBy = { local: 7, cloud: 3, mid: 6, none: 1, dead: 0 } as Record<string, number>;
      for (const p of Object.keys(sentBy)) expect(count((s) => s.provider === p), p).toBe(sentBy[p]);
      expect(Object.keys(rates).sort()).toEqual(Object.keys(sentBy).sort());
      const rateSum = Object.values(rates).reduce((a, b) => a + b, 0);
      const windowTimes = times.filter((t) => t <= at);
      const sampled = windowTimes[windowTimes.length - 1]! - windowTimes[0]!;
      const spacing = sampled / (windowTimes.length - 1);
      for (const [p, k] of Object.entries(sentBy)) {
        expect(rates[p]! / rateSum, `share of ${p}`).toBeCloseTo(k / total, 12);
        expect(rates[p]! * 300, `rate of ${p} x 5m`).toBeGreaterThanOrEqual(k * (1 - 1e-9));
        expect(rates[p]! * 300, `rate of ${p} x 5m`).toBeLessThanOrEqual(k * ((sampled + 1.6 * spacing) / sampled) + 1e-9);
      }

      // 4. Fallback rate.
      const fallbackRate = await scalar(prom, "sum(rate(router_fallback_total[5m])) / sum(rate(router_requests_total[5m]))", at);
      expect(fallbackRate).toBeCloseTo(fallbacks / total, 12); // 3/17

      // 5. Cost per token by tier: the priced tiers (the free local tier has tokens but no cost series).
      const perToken = await query(prom, "sum(rate(billing_cost_total[5m])) by (route_tier) / sum(rate(billing_tokens_total[5m])) by (route_tier)", at);
      const expectedPerToken: Record<string, number> = {};
      for (const [tier, inPrice, outPrice] of [["premium", 2, 8], ["standard", 0.5, 1.5]] as const) {
        const answered = sent.filter((s) => s.tier === tier && s.usage);
        const cost = answered.reduce((a, s) => a + (s.usage!.prompt_tokens * inPrice + s.usage!.completion_tokens * outPrice) / 1e6, 0);
        const tokens = answered.reduce((a, s) => a + s.usage!.prompt_tokens + s.usage!.completion_tokens, 0);
        expectedPerToken[tier] = cost / tokens;
      }
      const gotPerToken = Object.fromEntries(perToken.map((r) => [r.metric.route_tier!, Number(r.value[1])]));
      expect(Object.keys(gotPerToken).sort()).toEqual(["premium", "standard"]);
      for (const tier of ["premium", "standard"]) {
        expect(Math.abs(gotPerToken[tier]! / expectedPerToken[tier]! - 1), `cost per token, ${tier}`).toBeLessThan(1e-9);
      }

      // The shipped alert rules, evaluated by this Prometheus every second: all healthy; error rate
      // (3/17 > 5%), fallback rate (3/17 > 10%) and gone#0's open breaker are pending
      // (their `for:` has not passed); p95 has no hour before to compare with.
      const alerts = await until("the alerts to be pending", 10_000, async () => {
        const rules = (await (await fetch(`${prom.url}/api/v1/rules?type=alert`)).json()) as {
          data: { groups: { rules: { name: string; health: string; lastError?: string }[] }[] };
        };
        const all = rules.data.groups.flatMap((g) => g.rules);
        const broken = all.filter((r) => r.health === "err");
        if (broken.length > 0) throw new Error(`rules in error: ${JSON.stringify(broken)}`);
        if (all.length !== 4 || all.some((r) => r.health !== "ok")) return undefined;
        const body = (await (await fetch(`${prom.url}/api/v1/alerts`)).json()) as {
          data: { alerts: { labels: Record<string, string>; state: string; value: string }[] };
        };
        const names = body.data.alerts.map((a) => a.labels.alertname).sort();
        return names.length >= 3 ? body.data.alerts : undefined;
      });
      const byName = Object.fromEntries(alerts.map((a) => [a.labels.alertname!, a]));
      expect(Object.keys(byName).sort()).toEqual(["LabgateCircuitBreakerOpen", "LabgateHighErrorRate", "LabgateHighFallbackRate"]);
      expect(alerts.every((a) => a.state === "pending")).toBe(true);
      expect(byName.LabgateCircuitBreakerOpen!.labels).toMatchObject({ provider: "dead", deployment: "gone#0", severity: "warning" });
      expect(byName.LabgateHighErrorRate!.labels.severity).toBe("critical");

      // The shipped recording rules (the same queries for boards), from an evaluation that
      // saw the last scrape used above: the same numbers.
      const lastScrape = windowTimes[windowTimes.length - 1]!;
      const te = await until("the recording rules to run after the traffic", 10_000, async () => {
        const r = await query(prom, "timestamp(labgate:router_error_ratio:rate5m)", now());
        const t = r.length === 1 ? Number(r[0]!.value[1]) : 0;
        return t > lastScrape + 0.5 ? t : undefined;
      });
      expect(await scalar(prom, "labgate:router_error_ratio:rate5m", te)).toBeCloseTo(errors / total, 12);
      expect(await scalar(prom, "labgate:router_fallback_ratio:rate5m", te)).toBeCloseTo(fallbacks / total, 12);
      const recordedP95 = await scalar(prom, "labgate:router_latency_seconds:p95_rate5m", te);
      expect(recordedP95).toBeGreaterThan(lower);
      expect(recordedP95).toBeLessThanOrEqual(Number.isFinite(upper) ? upper : lower);
      const recordedRates = Object.fromEntries((await query(prom, "provider:router_requests:rate5m", te)).map((r) => [r.metric.provider!, Number(r.value[1])]));
      const recordedSum = Object.values(recordedRates).reduce((a, b) => a + b, 0);
      expect(Object.keys(recordedRates).sort()).toEqual(Object.keys(sentBy).sort());
      for (const [p, k] of Object.entries(sentBy)) expect(recordedRates[p]! / recordedSum, `recorded share of ${p}`).toBeCloseTo(k / total, 12);
      const recordedPerToken = Object.fromEntries((await query(prom, "route_tier:billing_cost_per_token:rate5m", te)).map((r) => [r.metric.route_tier!, Number(r.value[1])]));
      expect(Object.keys(recordedPerToken).sort()).toEqual(["premium", "standard"]);
      for (const tier of ["premium", "standard"]) expect(Math.abs(recordedPerToken[tier]! / expectedPerToken[tier]! - 1)).toBeLessThan(1e-9);

      console.log(
        `prometheus: error rate ${errorRate} (sent ${errors}/${total}), fallback rate ${fallbackRate} (sent ${fallbacks}/${total}), ` +
          `p95 ${p95} (sent traffic's buckets: ${expectedP95.value}, bucket (${lower}, ${upper}], exact: ${even}), ` +
          `share ${JSON.stringify(rates)}, cost/token ${JSON.stringify(gotPerToken)} (expected ${JSON.stringify(expectedPerToken)}), ` +
          `${samplesInWindow} samples`,
      );
    },
    40_000,
  );
});
