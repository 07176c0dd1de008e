// Micro-benchmark: the Ollama adapter's streamed chat, through the `ollama` npm client
// (the path before; bench/lib/ollama-client-adapter.ts) against the undici exchange
// with labgate's own NDJSON reader (gateway/providers/ollama/adapter.ts now).
//
//   node bench/ollama-path.ts
//
// A minimal Ollama mock runs in a child process on loopback (so its CPU is not
// counted): POST /api/chat answers with Ollama's NDJSON, one line per token and the
// final `done` line, either all in one write ("burst") or one write per line a
// macrotask apart ("spread", as a model streams). Each path is driven through its
// ProviderAdapter.chat() with stream: true and every batch read to the end (the
// chunks are counted and checked, not serialised: the API layer's SSE writing is the
// same for both). The paths take turns round after round; the tables give medians.
//
// Settings: OLLAMA_BENCH_ROUNDS (default 7), OLLAMA_BENCH_REQUESTS per round (400),
// OLLAMA_BENCH_CONCURRENCY (8), OLLAMA_BENCH_TOKENS per answer (16),
// OLLAMA_BENCH_MODES (burst,spread).
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { createOllamaAdapter } from "../gateway/providers/ollama/adapter.ts";
import type { CallContext, ProviderAdapter } from "../gateway/providers/types.ts";
import { createOllamaAdapter as createClientPathAdapter } from "./lib/ollama-client-adapter.ts";

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
const ROUNDS = env("OLLAMA_BENCH_ROUNDS", 7);
const REQUESTS = env("OLLAMA_BENCH_REQUESTS", 400);
const CONCURRENCY = env("OLLAMA_BENCH_CONCURRENCY", 8);
const TOKENS = env("OLLAMA_BENCH_TOKENS", 16);
const MODES = (process.env.OLLAMA_BENCH_MODES ?? "burst,spread").split(",").filter((m): m is Mode => m === "burst" || m === "spread");
type Mode = "burst" | "spread";

// ---------------------------------------------------------------------------
// The mock (child process)

function ndjsonLines(tokens: number): Buffer[] {
  const lines: Buffer[] = [];
  for (let i = 0; i < tokens; i++) {
    const line = { model: "llama3.2", created_at: "2023-08-04T08:52:19.385406455-07:00", message: { role: "assistant", content: ` tok${i}` }, done: false };
    lines.push(Buffer.from(JSON.stringify(line) + "\n"));
  }
  const done = {
    model: "llama3.2",
    created_at: "2023-08-04T19:22:45.499127Z",
    message: { role: "assistant", content: "" },
    done_reason: "stop",
    done: true,
    total_duration: 4883583458,
    load_duration: 1334875,
    prompt_eval_count: 26,
    prompt_eval_duration: 342546000,
    eval_count: tokens,
    eval_duration: 4535599000,
  };
  lines.push(Buffer.from(JSON.stringify(done) + "\n"));
  return lines;
}

function runMock(): void {
  const lines = ndjsonLines(TOKENS);
  const burst = Buffer.concat(lines);
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const mode = process.env.OLLAMA_BENCH_MOCK_MODE === "spread" ? "spread" : "burst";
      res.writeHead(200, { "content-type": "application/x-ndjson" });
      if (mode === "burst") {
        res.end(burst);
        return;
      }
      let i = 0;
      const next = (): void => {
        if (res.destroyed) return;
        res.write(lines[i++]);
        if (i < lines.length) setImmediate(next);
        else res.end();
      };
      next();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  });
  process.on("disconnect", () => process.exit(0));
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}

async function startMock(mode: Mode): Promise<{ url: string; close: () => void }> {
  const child = spawn(process.execPath, [import.meta.filename, "--mock"], {
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, OLLAMA_BENCH_MOCK_MODE: mode },
  });
  const rl = createInterface({ input: child.stdout! });
  const port = await new Promise<string>((resolve, reject) => {
    rl.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`mock exited with ${code}`)));
  });
  rl.close();
  return { url: `http://127.0.0.1:${port}`, close: () => child.stdin!.end() };
}

// ---------------------------------------------------------------------------
// The client side (this process)

const BODY = { model: "llama3.2", messages: [{ role: "user", content: "why is the sky blue?" }], stream: true };
const CHUNKS_PER_ANSWER = 1 /* role */ + TOKENS + 1 /* finish */ + 1; /* usage */

function ctx(): CallContext {
  return { signal: new AbortController().signal, upstreamModel: "llama3.2", timeoutMs: 30_000 };
}

async function oneChat(adapter: ProviderAdapter): Promise<void> {
  const r = await adapter.chat(BODY, ctx());
  if (r.kind !== "stream") throw new Error("expected a stream");
  let chunks = 0;
  for await (const batch of r.batches) chunks += batch.length;
  if (chunks !== CHUNKS_PER_ANSWER) throw new Error(`expected ${CHUNKS_PER_ANSWER} chunks, got ${chunks}`);
}

interface RoundResult {
  rps: number;
  cpuUs: number;
}

async function round(adapter: ProviderAdapter, requests: number): Promise<RoundResult> {
  let started = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started < requests) {
        started++;
        await oneChat(adapter);
      }
    }),
  );
  const cpu = process.cpuUsage(c0);
  const ms = performance.now() - t0;
  return { rps: requests / (ms / 1000), cpuUs: (cpu.user + cpu.system) / requests };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const paths: [string, (url: string) => ProviderAdapter][] = [
    ["ollama client (before)", (url) => createClientPathAdapter({ name: "bench", baseUrl: url })],
    ["undici exchange (now)", (url) => createOllamaAdapter({ name: "bench", baseUrl: url })],
  ];
  console.log(`ollama streamed chat: ${TOKENS} token lines + done per answer, ${REQUESTS} requests per round, ${CONCURRENCY} in flight, ${ROUNDS} rounds, node ${process.version}`);
  for (const mode of MODES) {
    const mock = await startMock(mode);
    const adapters = paths.map(([name, make]) => ({ name, adapter: make(mock.url), results: [] as RoundResult[] }));
    try {
      for (const a of adapters) await round(a.adapter, Math.min(100, REQUESTS)); // warm-up: JIT, connections
      for (let r = 0; r < ROUNDS; r++) {
        // Alternate which path goes first, so a slow spell of the machine falls on both.
        const order = r % 2 === 0 ? adapters : [...adapters].reverse();
        for (const a of order) {
          a.results.push(await round(a.adapter, REQUESTS));
          process.stderr.write(".");
        }
      }
      process.stderr.write("\n");
    } finally {
      for (const a of adapters) await a.adapter.close();
      mock.close();
    }
    console.log(`\nmode ${mode}`);
    console.log(`${"path".padEnd(24)} ${"req/s (median)".padStart(15)} ${"CPU µs/request (median)".padStart(24)} ${"CPU µs min-max".padStart(16)}`);
    for (const a of adapters) {
      const cpus = a.results.map((x) => x.cpuUs);
      console.log(
        `${a.name.padEnd(24)} ${median(a.results.map((x) => x.rps)).toFixed(0).padStart(15)} ${median(cpus).toFixed(0).padStart(24)} ${`${Math.min(...cpus).toFixed(0)}-${Math.max(...cpus).toFixed(0)}`.padStart(16)}`,
      );
    }
  }
}

if (process.argv[2] === "--mock") runMock();
else
  await main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
