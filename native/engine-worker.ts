// The embedded llama.cpp engine's worker thread. It owns the node-llama-cpp instance,
// the loaded models, their contexts and sequences; the gateway's main thread only
// sends requests (native/engine.ts) and receives tokens as they are produced.
//
// Started with `new Worker(new URL("./engine-worker.ts", import.meta.url))`. This entry
// point holds the worker's one state object and dispatches messages; each job lives in
// its own file under worker/:
//   outbox.ts      posting to the main thread (muted while a simulated crash winds down)
//   llama-host.ts  the llama.cpp instance and its recent log
//   models.ts      loaded models, their idle unload and their sequences
//   prompt.ts      prompts as tokens, logit bias
//   generate.ts    one generation (relay.ts: batching streamed text)
//   embed.ts       embeddings
import { parentPort } from "node:worker_threads";
import { LlamaLogLevel } from "node-llama-cpp";
import type { ToWorker } from "./protocol.ts";
import type { WorkerContext } from "./worker/context.ts";
import { embed } from "./worker/embed.ts";
import { generate } from "./worker/generate.ts";
import { LlamaHost, startFailureReason } from "./worker/llama-host.ts";
import { ModelTable } from "./worker/models.ts";
import { Outbox } from "./worker/outbox.ts";

if (!parentPort) throw new Error("engine-worker.ts must run in a worker thread");

const llama = new LlamaHost();
const w: WorkerContext = { out: new Outbox(parentPort), llama, models: new ModelTable(llama), aborts: new Map() };

parentPort.on("message", (msg: ToWorker) => {
  switch (msg.op) {
    case "init":
      w.llama.init(msg.gpu).then(
        (l) => w.out.post({ id: msg.id, type: "ready", gpu: l.gpu, cpuMathCores: l.cpuMathCores }),
        (err: unknown) => w.out.post({ id: msg.id, type: "start-failed", message: startFailureReason(err, msg.gpu) }),
      );
      break;
    case "generate":
      void generate(w, msg);
      break;
    case "embed":
      void embed(w, msg);
      break;
    case "abort":
      w.aborts.get(msg.id)?.abort();
      break;
    case "status":
      w.out.post({ id: msg.id, type: "status", gpu: w.llama.llama?.gpu ?? false, models: w.models.status() });
      break;
    case "unload":
      void w.models.unloadMatching(msg.path).then((count) => w.out.post({ id: msg.id, type: "unloaded", count }));
      break;
    case "shutdown":
      void shutdown(msg.crash === true);
      break;
  }
});

/** Stop generating, free every model and llama.cpp, then end the thread (with an error when `crash`). */
async function shutdown(crash: boolean): Promise<void> {
  w.out.muted = crash;
  for (const ac of w.aborts.values()) ac.abort();
  await w.models.unloadAll();
  await w.llama.dispose();
  if (crash) {
    // Surfaces as the worker's 'error' then 'exit' events, like a real failure.
    setImmediate(() => {
      throw new Error("embedded engine worker stopped (simulated failure)");
    });
    return;
  }
  w.out.close();
}

// A stray rejection must not take the engine (and every in-flight request) down.
process.on("unhandledRejection", (reason) => {
  w.llama.logger(LlamaLogLevel.error, `unhandled rejection in embedded engine: ${String((reason as Error)?.stack ?? reason)}`);
});
