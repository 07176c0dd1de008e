// A gateway with a vllm provider whose server (a fake on loopback) answers /metrics with
// the exact bytes of ../shared/protocols/vllm-metrics.txt, then with changed figures under
// the old names, then under the new ones; and a llamacpp provider started without
// --metrics (501), read through /slots. labgate's /metrics re-exports the figures per
// provider, and GET /admin/gate measures the vLLM criteria from the scrapes.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const sample = (file: string): string => readFileSync(new URL(`../../../shared/protocols/${file}`, import.meta.url), "utf8");
const VLLM = sample("vllm-metrics.txt");

interface Fake {
  url: string;
  routes: Record<string, { status: number; type: string; body: string }>;
  hits: string[];
  /** The Authorization header of each request. */
  auth: (string | undefined)[];
  close(): Promise<void>;
}

async function fakeServer(routes: Fake["routes"]): Promise<Fake> {
  const hits: string[] = [];
  const auth: (string | undefined)[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? "");
    auth.push(req.headers.authorization);
    const r = fake.routes[(req.url ?? "/").split("?")[0]!];
    if (!r) {
      res.writeHead(404, { "content-type": "application/json" });
      res.end('{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}');
      return;
    }
    res.writeHead(r.status, { "content-type": r.type });
    res.end(r.body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const fake: Fake = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    routes,
    hits,
    auth,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return fake;
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((x) => x.close()));
});

/** vLLM's dump with other figures: prefix-cache counters, waiting requests; `names` keeps one generation of names. */
function vllmText(o: { hits: number; queries: number; waiting: number; names: "old" | "new" }): string {
  const keep = o.names === "old" ? (l: string) => !/vllm:(kv_cache_usage_perc|prefix_cache_(hits|queries))/.test(l) : (l: string) => !/vllm:gpu_(cache_usage_perc|prefix_cache)/.test(l);
  return VLLM.split("\n")
    .filter(keep)
    .join("\n")
    .replace(/^(vllm:(?:gpu_)?prefix_cache_hits_total\{[^}]*\}) 61440\.0$/m, `$1 ${o.hits}.0`)
    .replace(/^(vllm:(?:gpu_)?prefix_cache_queries_total\{[^}]*\}) 98304\.0$/m, `$1 ${o.queries}.0`)
    .replace(/^(vllm:num_requests_waiting\{[^}]*\}) 2\.0$/m, `$1 ${o.waiting}.0`)
    .replaceAll(o.names === "new" ? "vllm:time_per_output_token_seconds" : "\u0000", "vllm:inter_token_latency_seconds");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

interface GateCriterion {
  id: string;
  verdict: string;
  value: number | null;
  subject?: string;
  detail?: string;
}

describe("upstream metrics through a gateway", () => {
  it("re-exports a vLLM server's figures (both naming generations) and llama.cpp's /slots, and the gate measures the vLLM criteria", async () => {
    const text = "text/plain; version=0.0.4; charset=utf-8";
    const vllm = await fakeServer({
      "/metrics": { status: 200, type: text, body: VLLM },
      "/v1/models": { status: 200, type: "application/json", body: sample("vllm-models.json") },
      "/health": { status: 200, type: "text/plain", body: "" },
    });
    const llama = await fakeServer({
      "/metrics": { status: 501, type: "application/json; charset=utf-8", body: sample("llamacpp-error-501-metrics-disabled.json") },
      "/slots": { status: 200, type: "application/json; charset=utf-8", body: sample("llamacpp-slots.json") },
      "/health": { status: 200, type: "application/json", body: sample("llamacpp-health-ok.json") },
    });
    open.push(vllm, llama);
    const config = {
      providers: {
        v: { type: "vllm", base_url: `${vllm.url}/v1` },
        l: { type: "llamacpp", base_url: llama.url, api_key: "env:LLAMA_KEY" },
      },
      models: { m: { deployments: [{ provider: "v", model: "meta-llama/Llama-3.1-8B-Instruct" }] } },
    };
    const gw: TestGateway = await startGateway(JSON.stringify(config), { upstreamMetricsIntervalMs: 100, env: { LLAMA_KEY: "sk-llama-local" } });
    open.push(gw);
    const metrics = async () => (await fetch(`${gw.url}/metrics`)).text();

    // The fixture as it is.
    const first = await until("the first scrapes", async () => {
      const m = await metrics();
      return m.includes('upstream_requests_waiting{provider="v"} 2') && m.includes('upstream_requests_running{provider="l"} 2') ? m : undefined;
    });
    expect(first).toContain('upstream_requests_running{provider="v"} 8');
    expect(first).toContain('upstream_kv_cache_usage_ratio{provider="v"} 0.4231770833333333');
    expect(first).toContain("# TYPE upstream_prefix_cache_hits_total counter");
    expect(first).toContain('upstream_prefix_cache_hits_total{provider="v"} 61440');
    expect(first).toContain('upstream_prefix_cache_queries_total{provider="v"} 98304');
    expect(first).toContain("# TYPE upstream_ttft_seconds histogram");
    expect(first).toContain('upstream_ttft_seconds_bucket{provider="v",le="0.02"} 20');
    expect(first).toContain('upstream_ttft_seconds_bucket{provider="v",le="+Inf"} 140');
    expect(first).toContain('upstream_ttft_seconds_count{provider="v"} 140');
    expect(first).toContain('upstream_inter_token_latency_seconds_count{provider="v"} 1400');
    // llama.cpp without --metrics: /metrics once (501), then /slots only.
    expect(first).not.toContain('upstream_requests_waiting{provider="l"}');
    expect(llama.hits.filter((h) => h === "/metrics")).toHaveLength(1);
    expect(llama.hits.filter((h) => h === "/slots").length).toBeGreaterThanOrEqual(1);
    // llama-server started with --api-key guards /metrics and /slots too: the provider's key goes along; vLLM's has none here.
    expect(llama.auth.filter((a, i) => llama.hits[i] === "/slots" || llama.hits[i] === "/metrics").every((a) => a === "Bearer sk-llama-local")).toBe(true);
    expect(vllm.auth.filter((a, i) => vllm.hits[i] === "/metrics").every((a) => a === undefined)).toBe(true);

    // Old names only, with 900 more hits in 1,000 more queries and 5 waiting.
    vllm.routes["/metrics"]!.body = vllmText({ hits: 61440 + 900, queries: 98304 + 1000, waiting: 5, names: "old" });
    await until("the old names' figures", async () => ((await metrics()).includes('upstream_prefix_cache_hits_total{provider="v"} 62340') ? true : undefined));
    const gate = async () => {
      const r = await fetch(`${gw.url}/admin/gate?window=5m`);
      expect(r.status).toBe(200);
      const body = (await r.json()) as { verdict: string; criteria: GateCriterion[] };
      return Object.fromEntries(body.criteria.map((c) => [c.id, c]));
    };
    const bad = await fetch(`${gw.url}/admin/gate?window=soon`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_window");
    let g = await gate();
    expect(g.kv_cache_hit_rate).toMatchObject({ verdict: "PASS" });
    expect(g.kv_cache_hit_rate!.value).toBeCloseTo(0.9, 12);
    expect(g.queue_depth_p95).toMatchObject({ verdict: "PASS", subject: "v" });
    expect([2, 5]).toContain(g.queue_depth_p95!.value);

    // New names only: 100 more hits in 1,000 more queries (1,000 of 2,000 in the window), 150 waiting from now on.
    vllm.routes["/metrics"]!.body = vllmText({ hits: 61440 + 1000, queries: 98304 + 2000, waiting: 150, names: "new" });
    await until("the new names' figures", async () => ((await metrics()).includes('upstream_prefix_cache_queries_total{provider="v"} 100304') ? true : undefined));
    g = await gate();
    expect(g.kv_cache_hit_rate).toMatchObject({ verdict: "FAIL" });
    expect(g.kv_cache_hit_rate!.value).toBeCloseTo(0.5, 12);
    const m = await metrics();
    expect(m).toContain('upstream_kv_cache_usage_ratio{provider="v"} 0.4231770833333333');
    expect(m).toContain('upstream_inter_token_latency_seconds_count{provider="v"} 1400');
    // Once most scrapes in the window say 150, the queue's p95 fails too.
    await until("the queue depth to fail", async () => ((await gate()).queue_depth_p95!.verdict === "FAIL" ? true : undefined));

    // A vLLM server that goes away: its series leave /metrics (its history stays for the gate).
    await vllm.close();
    open.splice(open.indexOf(vllm), 1);
    await until("the series to go", async () => (!/^upstream_\w+\{provider="v"/m.test(await metrics()) ? true : undefined));
    expect((await gate()).kv_cache_hit_rate!.value).toBeCloseTo(0.5, 12);
  }, 30_000);
});
