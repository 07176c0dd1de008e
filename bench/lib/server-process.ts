// Entry point of one benchmark server process: `node bench/lib/server-process.ts <mock|bare|labgate> [upstream-url]`.
// Each server gets its own process (own event loop, own heap, own RSS) and talks
// to the orchestrator over the IPC channel:
//   child -> parent {type:"ready", url, pid}
//   parent -> child {type:"stats"}  -> {type:"stats", rss, heapUsed, logRows?}
//   parent -> child {type:"profile-start"} -> {type:"profile-started"}   (V8 CPU profiler via node:inspector)
//   parent -> child {type:"profile-stop", file} -> {type:"profile-stopped", file}  (.cpuprofile written)
//   parent -> child {type:"close"}  -> {type:"closed"}, then the process exits
//     (normally, so --cpu-prof can write its profile).
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { startBareProxy } from "./bare-proxy.ts";
import { startLabgate, type LabgateTarget } from "./labgate-target.ts";
import { startMockUpstream } from "./mock-upstream.ts";

export type ServerKind = "mock" | "bare" | "labgate";

export type ToChild = { type: "stats" } | { type: "close" } | { type: "profile-start" } | { type: "profile-stop"; file: string };
export type FromChild =
  | { type: "ready"; url: string; pid: number }
  | { type: "stats"; rss: number; heapUsed: number; logRows?: ReturnType<LabgateTarget["logRows"]> }
  | { type: "closed" }
  | { type: "profile-started" }
  | { type: "profile-stopped"; file: string }
  | { type: "error"; message: string };

const MAX_LIFETIME_MS = 15 * 60_000;

function send(msg: FromChild): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  const [kind, upstream] = process.argv.slice(2) as [ServerKind, string | undefined];
  if (!process.send) throw new Error("server-process.ts must be started with an IPC channel");
  let url: string;
  let close: () => Promise<void>;
  let labgate: LabgateTarget | undefined;
  if (kind === "mock") {
    const m = await startMockUpstream();
    url = m.url;
    close = m.close;
  } else if (kind === "bare") {
    if (!upstream) throw new Error("bare needs an upstream URL");
    const b = await startBareProxy(upstream);
    url = b.url;
    close = b.close;
  } else if (kind === "labgate") {
    if (!upstream) throw new Error("labgate needs an upstream URL");
    labgate = await startLabgate(upstream);
    url = labgate.url;
    close = labgate.close;
  } else {
    throw new Error(`unknown server kind ${String(kind)}`);
  }

  // Never outlive the orchestrator.
  process.on("disconnect", () => process.exit(0));
  setTimeout(() => process.exit(3), MAX_LIFETIME_MS).unref();

  let session: Session | undefined;
  process.on("message", (msg: ToChild) => {
    if (msg.type === "profile-start") {
      void (async () => {
        session ??= new Session();
        session.connect();
        await session.post("Profiler.enable");
        await session.post("Profiler.setSamplingInterval", { interval: 200 });
        await session.post("Profiler.start");
        send({ type: "profile-started" });
      })().catch((err: unknown) => send({ type: "error", message: String(err) }));
    } else if (msg.type === "profile-stop") {
      void (async () => {
        if (!session) throw new Error("profile-stop without profile-start");
        const { profile } = await session.post("Profiler.stop");
        await session.post("Profiler.disable");
        session.disconnect();
        writeFileSync(msg.file, JSON.stringify(profile));
        send({ type: "profile-stopped", file: msg.file });
      })().catch((err: unknown) => send({ type: "error", message: String(err) }));
    } else if (msg.type === "stats") {
      const mem = process.memoryUsage();
      send({ type: "stats", rss: mem.rss, heapUsed: mem.heapUsed, logRows: labgate?.logRows() });
    } else if (msg.type === "close") {
      void close()
        .catch(() => {})
        .then(() => {
          send({ type: "closed" });
          // Let the IPC message leave before exiting.
          setTimeout(() => process.exit(0), 20);
        });
    }
  });
  send({ type: "ready", url, pid: process.pid });
}

main().catch((err: unknown) => {
  send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  setTimeout(() => process.exit(1), 20);
});
