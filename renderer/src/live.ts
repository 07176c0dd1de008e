// The live event stream (/admin/events) read with fetch rather than EventSource,
// because EventSource cannot send the admin key as a header (and the key must
// never go into a URL). Reconnects by itself with Last-Event-ID, waiting longer
// after each failed try (1 s up to ~15 s, see sse.ts reconnectDelayMs) and quickly
// again once the stream has opened.
import type { AdminClient } from "./api.ts";
import { pause, readEventStream, reconnectDelayMs, type SseEvent } from "./sse.ts";

export interface LiveEvent {
  id: number | undefined;
  type: string;
  data: Record<string, unknown> & { at?: string };
}

type Listener = (e: LiveEvent) => void;
export type LiveStatus = "connecting" | "open" | "down";

export class LiveEvents {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly statusListeners = new Set<(s: LiveStatus) => void>();
  private lastId: number | undefined;
  private controller: AbortController | undefined;
  private wake: AbortController | undefined;
  /** restart() was called: the next try goes at once. */
  private retryNow = false;
  private stopped = false;
  private statusValue: LiveStatus = "connecting";

  constructor(private readonly client: AdminClient) {}

  get status(): LiveStatus {
    return this.statusValue;
  }

  /** Listen to one event type ("*" for all). */
  on(type: string, fn: Listener): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  onStatus(fn: (s: LiveStatus) => void): () => void {
    this.statusListeners.add(fn);
    fn(this.statusValue);
    return () => this.statusListeners.delete(fn);
  }

  start(): void {
    this.stopped = false;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.controller?.abort();
    this.wake?.abort();
  }

  /** Reconnect now (after the admin key was given, say). */
  restart(): void {
    this.retryNow = true;
    this.controller?.abort();
    this.wake?.abort();
  }

  private setStatus(s: LiveStatus): void {
    if (s === this.statusValue) return;
    this.statusValue = s;
    for (const fn of this.statusListeners) fn(s);
  }

  private emit(e: LiveEvent): void {
    for (const fn of this.listeners.get(e.type) ?? []) fn(e);
    for (const fn of this.listeners.get("*") ?? []) fn(e);
  }

  private async loop(): Promise<void> {
    // Failed tries in a row: the wait before the next grows with them (reconnectDelayMs),
    // so a gateway that is away costs each tab one request every ~15 s, not two a second.
    let failures = 0;
    while (!this.stopped) {
      this.retryNow = false;
      this.controller = new AbortController();
      try {
        const headers = this.client.headers({ accept: "text/event-stream" });
        if (this.lastId !== undefined) headers["last-event-id"] = String(this.lastId);
        let res: Response;
        try {
          res = await fetch(`${this.client.base}/admin/events`, { headers, signal: this.controller.signal, cache: "no-store" });
        } catch (err) {
          // No answer at all (not an HTTP error): the gateway is away. An abort (restart()) is not.
          if (!this.controller.signal.aborted) this.client.setReachable(false);
          throw err;
        }
        this.client.setReachable(true);
        if (res.status === 401) {
          this.client.forgetKey();
          this.client.setKeyNeeded(true);
          this.setStatus("down");
          await this.keyGiven();
          failures = 0;
          continue;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        this.setStatus("open");
        failures = 0;
        await readEventStream(res.body, (e) => this.received(e));
      } catch {
        // fall through to the retry below
      }
      if (this.stopped) return;
      this.setStatus("down");
      // restart() cuts this wait short: a new key is tried at once.
      this.wake = new AbortController();
      if (!this.retryNow) await pause(reconnectDelayMs(failures++), this.wake.signal);
    }
  }

  private keyGiven(): Promise<void> {
    return new Promise<void>((resolve) => {
      const off = this.client.onKeyNeeded((needed) => {
        if (!needed) {
          queueMicrotask(() => off());
          resolve();
        }
      });
    });
  }

  private received(e: SseEvent): void {
    if (e.id !== undefined && /^\d+$/.test(e.id)) this.lastId = Number(e.id);
    try {
      this.emit({ id: this.lastId, type: e.type, data: JSON.parse(e.data) as LiveEvent["data"] });
    } catch {
      // a frame that is not JSON is not ours: skip it
    }
  }
}
