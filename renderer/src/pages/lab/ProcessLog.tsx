// A supervised process's output, followed live: the recent lines, then each new one
// as the gateway sends it (GET .../logs?follow=1, an event stream read with fetch
// so the admin key stays in a header). Closing the panel aborts the stream, so the
// gateway stops sending. A dropped stream is opened again (it starts with the
// recent lines, so the view is rebuilt rather than appended to).
import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { useServices } from "../../context.tsx";
import type { LogLineView } from "../lab-types.ts";
import { readEventStream } from "./sse.ts";

const KEEP_LINES = 2000;
const RECENT_LINES = 300;
const RETRY_MS = 2000;

/** A line's time of day in the reader's time zone. */
function clock(iso: string): string {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? "" : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

type FollowState = { kind: "connecting" } | { kind: "following" } | { kind: "retrying"; why: string } | { kind: "failed"; why: string };

export function ProcessLog({ name, onClose }: { name: string; onClose: () => void }) {
  const { client } = useServices();
  const [lines, setLines] = useState<LogLineView[]>([]);
  const [state, setState] = useState<FollowState>({ kind: "connecting" });
  const box = useRef<HTMLPreElement>(null);
  // Follow the bottom unless the reader scrolled up to read something.
  const stick = useRef(true);

  useEffect(() => {
    const controller = new AbortController();
    const signal = controller.signal;
    const run = async (): Promise<void> => {
      while (!signal.aborted) {
        try {
          const res = await fetch(`${client.base}/admin/lab/processes/${encodeURIComponent(name)}/logs?lines=${RECENT_LINES}&follow=1`, {
            headers: client.headers({ accept: "text/event-stream" }),
            signal,
            cache: "no-store",
          });
          if (!res.ok || !res.body) {
            const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
            const why = body?.error?.message ?? `HTTP ${res.status}`;
            if (res.status === 401) client.setKeyNeeded(true);
            if (res.status < 500) return setState({ kind: "failed", why });
            throw new Error(why);
          }
          setLines([]);
          setState({ kind: "following" });
          let batch: LogLineView[] = [];
          let scheduled = false;
          // Lines arrive in bursts (a server's start-up): one render per frame, not per line.
          const flush = () => {
            scheduled = false;
            const add = batch;
            batch = [];
            setLines((old) => {
              const next = old.concat(add);
              return next.length > KEEP_LINES ? next.slice(next.length - KEEP_LINES) : next;
            });
          };
          await readEventStream(res.body, (type, data) => {
            if (type !== "log") return;
            try {
              batch.push(JSON.parse(data) as LogLineView);
            } catch {
              return;
            }
            if (!scheduled) {
              scheduled = true;
              requestAnimationFrame(flush);
            }
          });
          throw new Error("the stream ended");
        } catch (err) {
          if (signal.aborted) return;
          setState({ kind: "retrying", why: (err as Error).message });
          await new Promise((r) => setTimeout(r, RETRY_MS));
        }
      }
    };
    void run();
    return () => controller.abort();
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
          lines.map((l, i) => (
            <span key={i} className={l.stream === "stderr" ? "lab-log-err" : undefined}>
              <span className="lab-log-at">{clock(l.at)}</span> {l.line}
              {"\n"}
            </span>
          ))
        )}
      </pre>
    </section>
  );
}
