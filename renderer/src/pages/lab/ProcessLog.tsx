// A supervised process's output, followed live: the recent lines, then each new one
// as the gateway sends it (GET .../logs?follow=1, an event stream read with fetch
// so the admin key stays in a header). Closing the panel aborts the stream, so the
// gateway stops sending. A dropped stream is opened again, waiting longer after each
// failed try (it starts with the recent lines, so the view is rebuilt rather than
// appended to); a 401 waits for the admin key and tries again once it is given.
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import type { AdminClient } from "../../api.ts";
import { useServices } from "../../context.tsx";
import { formatTime } from "../../format.ts";
import { pause, readEventStream, reconnectDelayMs } from "../../sse.ts";
import type { LogLineView } from "../lab-types.ts";

const KEEP_LINES = 2000;
const RECENT_LINES = 300;

/** A line with an id that only grows: React keys that stay with their line while old lines are trimmed. */
type ShownLine = LogLineView & { id: number };

type FollowState =
  | { kind: "connecting" }
  | { kind: "following" }
  | { kind: "retrying"; why: string }
  | { kind: "key" }
  | { kind: "failed"; why: string };

/** Resolves once the admin key was given (or the panel closed). */
function keyGiven(client: AdminClient, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    let off: (() => void) | undefined;
    const done = (): void => {
      queueMicrotask(() => off?.());
      signal.removeEventListener("abort", done);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
    off = client.onKeyNeeded((needed) => {
      if (!needed) done();
    });
  });
}

export function ProcessLog({ name, onClose }: { name: string; onClose: () => void }) {
  const { client } = useServices();
  const [lines, setLines] = useState<ShownLine[]>([]);
  const [state, setState] = useState<FollowState>({ kind: "connecting" });
  const box = useRef<HTMLPreElement>(null);
  // Follow the bottom unless the reader scrolled up to read something.
  const stick = useRef(true);
  const nextLineId = useRef(0);

  useEffect(() => {
    const controller = new AbortController();
    const signal = controller.signal;
    // Which stream may change the view: a frame of lines read from an older one (its
    // flush still scheduled when the next one opened and reset the view) is dropped.
    let current = 0;
    let frame = 0;
    const run = async (): Promise<void> => {
      let failures = 0;
      while (!signal.aborted) {
        const stream = ++current;
        try {
          const res = await fetch(`${client.base}/admin/lab/processes/${encodeURIComponent(name)}/logs?lines=${RECENT_LINES}&follow=1`, {
            headers: client.headers({ accept: "text/event-stream" }),
            signal,
            cache: "no-store",
          });
          if (res.status === 401) {
            client.forgetKey();
            client.setKeyNeeded(true);
            setState({ kind: "key" });
            await keyGiven(client, signal);
            failures = 0;
            continue;
          }
          if (!res.ok || !res.body) {
            const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
            const why = body?.error?.message ?? `HTTP ${res.status}`;
            if (res.status < 500) return setState({ kind: "failed", why });
            throw new Error(why);
          }
          failures = 0;
          // The older stream's last frame of lines, if still scheduled, is not for this view.
          if (frame) cancelAnimationFrame(frame);
          frame = 0;
          setLines([]);
          setState({ kind: "following" });
          let batch: ShownLine[] = [];
          // Lines arrive in bursts (a server's start-up): one render per frame, not per line.
          const flush = () => {
            frame = 0;
            const add = batch;
            batch = [];
            if (stream !== current || signal.aborted) return;
            setLines((old) => {
              const next = old.concat(add);
              return next.length > KEEP_LINES ? next.slice(next.length - KEEP_LINES) : next;
            });
          };
          await readEventStream(res.body, (e) => {
            if (e.type !== "log" || stream !== current) return;
            try {
              batch.push({ ...(JSON.parse(e.data) as LogLineView), id: nextLineId.current++ });
            } catch {
              return;
            }
            if (!frame) frame = requestAnimationFrame(flush);
          });
          throw new Error("the stream ended");
        } catch (err) {
          if (signal.aborted) return;
          setState({ kind: "retrying", why: (err as Error).message });
          await pause(reconnectDelayMs(failures++), signal);
        }
      }
    };
    void run();
    return () => {
      controller.abort();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [client, name]);

  useLayoutEffect(() => {
    const el = box.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [lines]);

  const status =
    state.kind === "following"
      ? "Following live"
      : state.kind === "connecting"
        ? "Connecting…"
        : state.kind === "retrying"
          ? `Reconnecting (${state.why})…`
          : state.kind === "key"
            ? "Waiting for the admin key…"
          : `Cannot show the log: ${state.why}`;
  const titleId = `log-title-${name}`;
  return (
    <section className="panel lab-log" aria-labelledby={titleId} data-testid={`process-log-${name}`} data-following={state.kind === "following" ? "yes" : "no"}>
      <header className="lab-card-head">
        <h3 id={titleId}>
          Log of <span className="mono">{name}</span>
        </h3>
        <span className={`lab-small ${state.kind === "following" ? "ok" : state.kind === "failed" ? "bad" : "warn"}`}>{status}</span>
        <button type="button" onClick={onClose} aria-label={`Close the log of ${name}`}>
          Close
        </button>
      </header>
      <pre
        ref={box}
        className="lab-log-lines mono"
        tabIndex={0}
        aria-label={`Output of ${name}`}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
        }}
      >
        {lines.length === 0 ? (
          <span className="muted">{state.kind === "following" ? "No output yet." : ""}</span>
        ) : (
          lines.map((l) => (
            <span key={l.id} className={l.stream === "stderr" ? "lab-log-err" : undefined}>
              <span className="lab-log-at">{formatTime(l.at)}</span> {l.line}
              {"\n"}
            </span>
          ))
        )}
      </pre>
    </section>
  );
}
