// A real llama-server (built from the llama.cpp source node-llama-cpp ships, by
// .ci/build-llama-server.sh) on the tiny real model: labgate finds one started by
// hand, launches its own on another port, routes a streamed chat through it, and
// when it is killed the supervisor brings it back.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url).pathname;

/** LABGATE_LLAMA_SERVER, or the newest build in the cache the build script fills. */
function findLlamaServer(): string | undefined {
  if (process.env.LABGATE_LLAMA_SERVER && existsSync(process.env.LABGATE_LLAMA_SERVER)) return process.env.LABGATE_LLAMA_SERVER;
  const cache = process.env.LABGATE_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "labgate");
  if (!existsSync(cache)) return undefined;
  for (const d of readdirSync(cache).filter((x) => x.startsWith("llama-server-")).sort().reverse()) {
    const bin = join(cache, d, "bin", "llama-server");
    if (existsSync(bin)) return bin;
  }
  return undefined;
}

const LLAMA_SERVER = findLlamaServer();
// In CI the binary is built before the tests: its absence is a failure there, a skip elsewhere.
const run = LLAMA_SERVER !== undefined || process.env.CI === "true" ? it : it.skip;

const serverArgs = (port: number) => ["-m", MODEL, "--host", "127.0.0.1", "--port", String(port), "-t", "1", "-c", "256", "-np", "1"];

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function poll<T>(what: () => Promise<T>, ok: (v: T) => boolean, tries = 600): Promise<T> {
  let v = await what();
  for (let i = 0; i < tries && !ok(v); i++) {
    await new Promise((r) => setTimeout(r, 100));
    v = await what();
  }
  return v;
}

describe("a real llama-server", () => {
  run("is discovered when started by hand, launched and supervised by labgate, and serves a streamed chat", async () => {
    expect(LLAMA_SERVER, "llama-server was not built: run .ci/build-llama-server.sh").toBeDefined();
    const byHand = await freePort();
    const own = await freePort();
    const manual: ChildProcess = spawn(LLAMA_SERVER!, serverArgs(byHand), { stdio: "ignore" });
    cleanup.push(() => void manual.kill("SIGKILL"));

    const gw: TestGateway = await startGateway(
      JSON.stringify({
        lab: { discovery: { hosts: ["127.0.0.1"], ports: [byHand], interval_s: 0.5 } },
        providers: {
          "my-llama": {
            type: "llamacpp",
            base_url: `http://127.0.0.1:${own}`,
            launch: { command: LLAMA_SERVER, args: serverArgs(own), startup_timeout_s: 60, stop_timeout_s: 2, backoff_initial_s: 0.2, backoff_max_s: 1 },
          },
        },
        models: { tiny: { deployments: [{ provider: "my-llama", model: "stories260K" }] } },
        router: { retries: 0 },
      }),
      { serverDiscovery: true, discoveryIntervalMs: 500 },
    );
    cleanup.push(() => gw.close());

    // The one started by hand is found and classified by what it answers.
    const servers = await poll(
      async () => ((await (await fetch(`${gw.url}/admin/lab/servers`)).json()) as { data: { port: number; kind: string; provider: string; evidence: string[] }[] }).data,
      (d) => d.some((s) => s.port === byHand && s.kind === "llamacpp"),
    );
    const found = servers.find((s) => s.port === byHand)!;
    expect(found).toMatchObject({ kind: "llamacpp", provider: "llama-cpp" });
    expect(found.evidence.join("\n")).toMatch(/GET \/props -> 200/);

    // Its own is launched and becomes healthy; a streamed chat goes through it.
    type Proc = { state: string; pid: number | null; restarts: number };
    const proc = async (): Promise<Proc> => ((await (await fetch(`${gw.url}/admin/lab/processes`)).json()) as { data: Proc[] }).data[0]!;
    const running = await poll(proc, (p) => p.state === "running");
    expect(running.state).toBe("running");
    const streamChat = async (): Promise<{ status: number; provider: string | null; text: string }> => {
      const res = await fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Once upon a time" }], stream: true, max_tokens: 8 }),
      });
      return { status: res.status, provider: res.headers.get("x-routed-provider"), text: await res.text() };
    };
    const first = await streamChat();
    expect([first.status, first.provider]).toEqual([200, "my-llama"]);
    expect(first.text).toMatch(/"delta":\{"content":"/);
    expect(first.text.trimEnd().endsWith("data: [DONE]")).toBe(true);

    // Killed: the supervisor brings it back, and it serves again.
    process.kill(running.pid!, "SIGKILL");
    const back = await poll(proc, (p) => p.state === "running" && p.pid !== running.pid);
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    const again = await streamChat();
    expect([again.status, again.provider]).toEqual([200, "my-llama"]);
  });
});
