// The engine when its worker cannot even start: requests fail clearly and at once,
// never hang holding their queue slot.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { EmbeddedEngine } from "../../native/engine.ts";

const dir = mkdtempSync(join(tmpdir(), "labgate-engine-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const spec = { path: join(dir, "m.gguf"), file: "m.gguf", version: "1", parallel: 1, threads: 1, idleTtlMs: 60_000 };
const request = { model: spec, prompt: { kind: "text" as const, text: "Once" }, params: { temperature: 0, stop: [], maxTokens: 4, stream: false }, maxQueue: 4 };

describe("embedded engine start-up", () => {
  it("a worker that dies before it is ready fails each request promptly and frees the slot", async () => {
    const script = join(dir, "dies.mjs");
    writeFileSync(script, "process.exit(3);\n");
    const engine = new EmbeddedEngine({ gpu: false, workerUrl: pathToFileURL(script) });
    try {
      // A signal that never aborts: only the worker's death can end each request (no elapsed-time check;
      // a request left waiting would run into the test's timeout).
      const never = new AbortController().signal;
      for (let i = 0; i < 3; i++) {
        await expect(engine.generate(request, never)).rejects.toMatchObject({ errorClass: "unavailable" });
      }
      expect(engine.queues().every((q) => q.active === 0 && q.waiting === 0)).toBe(true);
      // Each request tried a new worker: a worker that died is no reason to stop trying.
      expect(await engine.status()).toMatchObject({ running: false, state: "failed", startFailed: false, restarts: 2, lastError: "embedded engine stopped unexpectedly (exit code 3)" });
    } finally {
      await engine.close();
    }
  });

  it("a worker that never answers still lets a caller give up (its signal)", async () => {
    const script = join(dir, "silent.mjs");
    const started = join(dir, "silent.started");
    // It says (in a file) that it runs, then never answers.
    writeFileSync(script, `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(started)}, "");\nsetInterval(() => {}, 1000);\n`);
    const engine = new EmbeddedEngine({ gpu: false, workerUrl: pathToFileURL(script), shutdownGraceMs: 100 });
    try {
      // The caller gives up once the worker runs (not on a timer: a loaded machine can take
      // longer than any timer to start a thread, and one terminated before it ran exits 0, not 1).
      const giveUp = new AbortController();
      const generating = engine.generate(request, giveUp.signal);
      await expect.poll(() => existsSync(started), { timeout: 20_000 }).toBe(true);
      giveUp.abort();
      await expect(generating).rejects.toBeDefined();
      expect(engine.queues().every((q) => q.active === 0)).toBe(true);
    } finally {
      // It ignores the shutdown message too: terminated after the (shortened) grace period.
      await engine.close();
    }
    expect(engine.supervisor.status()).toMatchObject({ state: "stopped", lastExit: { code: 1 } });
  });

  it("a worker that says llama.cpp cannot start: requests fail at once for a while, then it is tried again", async () => {
    const script = join(dir, "refuses.mjs");
    writeFileSync(
      script,
      `import { parentPort } from "node:worker_threads";
parentPort.on("message", (m) => {
  if (m.op === "init") parentPort.postMessage({ id: m.id, type: "start-failed", message: "embedded engine could not start llama.cpp: no GPU here" });
  if (m.op === "shutdown") parentPort.close();
});
`,
    );
    let now = 1_000_000;
    const engine = new EmbeddedEngine({ gpu: false, workerUrl: pathToFileURL(script), startRetryMs: 10_000, now: () => now });
    try {
      await expect(engine.generate(request, AbortSignal.timeout(10_000))).rejects.toMatchObject({
        errorClass: "unavailable",
        message: "embedded engine could not start llama.cpp: no GPU here",
      });
      expect(await engine.status()).toMatchObject({ running: false, state: "failed", startFailed: true, restarts: 0 });
      // Within startRetryMs: the same answer, without a new worker.
      now += 9_999;
      await expect(engine.generate(request, AbortSignal.timeout(10_000))).rejects.toMatchObject({ message: /no GPU here/ });
      expect(engine.supervisor.status().restarts).toBe(0);
      // Then it is tried again.
      now += 1;
      await expect(engine.generate(request, AbortSignal.timeout(10_000))).rejects.toMatchObject({ message: /no GPU here/ });
      expect(engine.supervisor.status().restarts).toBe(1);
      expect(engine.queues().every((q) => q.active === 0 && q.waiting === 0)).toBe(true);
    } finally {
      await engine.close();
    }
  });
});
