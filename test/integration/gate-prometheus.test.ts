// The readiness gate in --prometheus mode: a real Prometheus (Debian's package) scrapes a
// gateway with fake upstreams and a fake vLLM server, and `labgate gate --prometheus URL`
// answers the same criteria as `labgate gate` over the request log of that gateway.
//
// As in prometheus.test.ts, the same traffic runs three times before Prometheus starts
// and once while it watches: increase() then stretches every counter by the same factor,
// so ratios over the window are those of one round, which are those of all four rounds
// that the request log holds.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify as stringifyYaml } from "yaml";
import { startFakeOpenAI, type FakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { prometheusInstalled, query, until, usePrometheus, type PromMatrix } from "../fixtures/prometheus.ts";
import { gateCommand } from "../../gateway/telemetry/gate-command.ts";
import type { CriterionResult, GateReport } from "../../gateway/telemetry/gate.ts";

const MASTER_KEY = "sk-master-gate-test";
const VLLM = readFileSync(new URL("../../../shared/protocols/vllm-metrics.txt", import.meta.url), "utf8");
const prometheus = usePrometheus();
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((x) => x.close()));
});

/** A vLLM server's /metrics (the fixture's bytes) whose prefix-cache counters grow by 90 hits in 100 queries per scrape, 3 waiting. */
async function fakeVllm(): Promise<{ url: string; close(): Promise<void> }> {
  let n = 0;
  const server: Server = createServer((req, res) => {
    if (req.url === "/metrics") {
      n++;
      res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      res.end(
        VLLM.replace(/^(vllm:(?:gpu_)?prefix_cache_hits_total\{[^}]*\}) 61440\.0$/gm, `$1 ${61440 + 90 * n}.0`)
          .replace(/^(vllm:(?:gpu_)?prefix_cache_queries_total\{[^}]*\}) 98304\.0$/gm, `$1 ${98304 + 100 * n}.0`)
          .replace(/^(vllm:num_requests_waiting\{[^}]*\}) 2\.0$/m, "$1 3.0"),
      );
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"detail":"Not Found"}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

async function runGate(args: string[]): Promise<{ code: number; report: GateReport; err: string }> {
  let out = "";
  let err = "";
  const code = await gateCommand(args, {}, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, report: JSON.parse(out || "{}") as GateReport, err };
}

describe.runIf(prometheusInstalled)("labgate gate --prometheus", () => {
  it("measures the same criteria with PromQL as over the request log", async () => {
    const fakes: FakeOpenAI[] = [];
    for (const name of ["local", "mid", "cloud"]) fakes.push(await startFakeOpenAI({ name }));
    const [local, mid, cloud] = fakes as [FakeOpenAI, FakeOpenAI, FakeOpenAI];
    const vllm = await fakeVllm();
    open.push(...fakes, vllm);
    const price = (input_per_1m: number, output_per_1m: number) => ({ input_per_1m, output_per_1m });
    const config = {
      server: { master_key: "env:LG_MASTER" },
      providers: {
        local: { type: "openai-compatible", base_url: local.v1 },
        mid: { type: "openai-compatible", base_url: mid.v1 },
        cloud: { type: "openai-compatible", base_url: cloud.v1 },
        v: { type: "vllm", base_url: vllm.url },
      },
      models: {
        fast: {
          strategy: "priority",
          deployments: [
            { provider: "local", model: "x", tier: "local", price: price(0, 0) },
            { provider: "cloud", model: "x", tier: "premium", price: price(2, 8) },
          ],
        },
        std: { deployments: [{ provider: "mid", model: "x", tier: "standard", price: price(0.5, 1.5) }] },
      },
      budgets: { tiers: { premium: { max_usd_per_1k_tokens: 0.05 }, standard: { max_usd_per_1k_tokens: 0.0001 } } },
      router: { retries: 0, circuit_breaker: { cooldown_s: 600 } },
    };
    const gw: TestGateway = await startGateway(JSON.stringify(config), { env: { LG_MASTER: MASTER_KEY }, upstreamMetricsIntervalMs: 200 });
    open.push(gw);
    const configFile = join(gw.dataDir, "labgate-config.yaml");
    writeFileSync(configFile, JSON.stringify(config));

    let n = 0;
    const chat = async (model: string, status: number) => {
      n++;
      const r = await fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${MASTER_KEY}` },
        body: JSON.stringify({ model, messages: [{ role: "user", content: `w${n % 3}` }] }),
      });
      await r.arrayBuffer();
      expect(r.status, `request ${n} to ${model}`).toBe(status);
    };
    // One round: local answers 9, cloud 1 after local failed (a fallback), mid answers 9 and fails 1 (502).
    const round = async () => {
      for (let i = 0; i < 9; i++) await chat("fast", 200);
      local.faultNext({ kind: "status", status: 500 });
      await chat("fast", 200);
      for (let i = 0; i < 9; i++) await chat("std", 200);
      mid.faultNext({ kind: "status", status: 500 });
      await chat("std", 502);
    };
    await round();
    await round();
    await round();

    const dir = prometheus.tmp();
    writeFileSync(join(dir, "key"), MASTER_KEY + "\n");
    const prom = await prometheus.start(
      dir,
      stringifyYaml({
        global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
        scrape_configs: [{ job_name: "labgate", metrics_path: "/metrics", authorization: { credentials_file: join(dir, "key") }, static_configs: [{ targets: [new URL(gw.url).host] }] }],
      }),
    );
    const now = () => Date.now() / 1000;
    const scrapes = async () => ((await query<PromMatrix>(prom, 'up{job="labgate"}[5m]', now()))[0]?.values ?? []).filter(([, v]) => v === "1").map(([t]) => t);
    await until("a first scrape", 10_000, async () => ((await scrapes()).length >= 1 ? true : undefined));
    await round();
    const end = now();
    await until("two scrapes after the traffic", 10_000, async () => ((await scrapes()).filter((t) => t > end).length >= 2 ? true : undefined));

    const fromProm = await runGate(["--prometheus", prom.url, "--config", configFile, "--window", "5m", "--json"]);
    expect(fromProm.err).toBe("");
    gw.gateway.requestLog.flush();
    const fromLog = await runGate(["--data-dir", gw.dataDir, "--config", configFile, "--window", "5m", "--json"]);
    const p = Object.fromEntries(fromProm.report.criteria.map((c) => [c.id, c])) as Record<string, CriterionResult>;
    const l = Object.fromEntries(fromLog.report.criteria.map((c) => [c.id, c])) as Record<string, CriterionResult>;
    const summary = JSON.stringify(fromProm.report.criteria.map((c) => [c.id, c.verdict, c.value, c.subject, c.detail]));

    // Per round: 20 requests, one 502 (mid), one fallback that answered, every request the master key's.
    expect(p.availability!.value, summary).toBeCloseTo(19 / 20, 9);
    expect(l.availability!.value).toBeCloseTo(19 / 20, 12);
    expect(p.error_rate!.value).toBeCloseTo(1 / 20, 9);
    expect(p.fallback_success!.value).toBeCloseTo(1, 9);
    expect(p.attribution!.value).toBeCloseTo(1, 9);
    expect(p.provider_error_share).toMatchObject({ verdict: "FAIL", subject: "mid" });
    expect(p.provider_error_share!.value).toBeCloseTo(1, 9);
    expect(p.provider_traffic_share!.subject).toBe("mid");
    expect(p.provider_traffic_share!.value).toBeCloseTo(10 / 20, 9);
    // Cost per 1k tokens: premium within its budget, standard (0.0001) over it; the same figures as the log's.
    expect(p.cost_per_1k_tokens).toMatchObject({ verdict: "FAIL", subject: "standard" });
    for (const tier of ["premium", "standard"]) {
      const fromP = p.cost_per_1k_tokens!.items!.find((i) => i.subject === tier)!.value;
      const fromL = l.cost_per_1k_tokens!.items!.find((i) => i.subject === tier)!.value;
      expect(Math.abs(fromP / fromL - 1), tier).toBeLessThan(1e-9);
    }
    // The router's routing time (Prometheus) and labgate's overhead (log): both well under 150 ms here.
    expect(p.routing_p95).toMatchObject({ verdict: "PASS", title: "routing p95" });
    expect(l.routing_p95).toMatchObject({ verdict: "PASS", title: "routing p95 (labgate overhead)" });
    // vLLM: 90 hits per 100 queries between any two scrapes, 3 waiting.
    expect(p.kv_cache_hit_rate!.value).toBeCloseTo(0.9, 9);
    expect(l.kv_cache_hit_rate!.value).toBeCloseTo(0.9, 9);
    expect(p.queue_depth_p95).toMatchObject({ verdict: "PASS", value: 3, subject: "v" });
    expect(l.queue_depth_p95).toMatchObject({ verdict: "PASS", value: 3, subject: "v" });
    // No weighted group of two, no batches: NO DATA either way.
    expect(p.weight_share!.verdict).toBe("NO DATA");
    expect(p.batch_success!.verdict).toBe("NO DATA");

    // The same verdict on every criterion, and the same exit status (1: availability, error rate, error share, cost fail).
    expect(fromProm.report.criteria.map((c) => [c.id, c.verdict])).toEqual(fromLog.report.criteria.map((c) => [c.id, c.verdict]));
    for (const id of ["availability", "error_rate", "fallback_success", "attribution", "provider_error_share", "provider_traffic_share"]) {
      expect(p[id]!.value!, id).toBeCloseTo(l[id]!.value!, 9);
    }
    expect([fromProm.code, fromLog.code]).toEqual([1, 1]);
  }, 60_000);
});
