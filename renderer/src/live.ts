// The live event stream (/admin/events) read with fetch rather than EventSource,
// because EventSource cannot send the admin key as a header (and the key must
// never go into a URL). Reconnects by itself with Last-Event-ID.
import type { AdminClient } from "./api.ts";

export interface LiveEvent {
  id: number | undefined;
  type: string;
  data: Record<string, unknown> & { at?: string };
}

type Listener = (e: LiveEvent) => void;
export type LiveStatus = "connecting" | "open" | "down";

const RETRY_MS = 1000;

export class LiveEvents {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly statusListeners = new Set<(s: LiveStatus) => void>();
  private lastId: number | undefined;
  private controller: AbortController | undefined;
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
  }

  /** Reconnect now (after the admin key was given, say). */
  restart(): void {
    this.controller?.abort();
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
    while (!this.stopped) {
      this.controller = new AbortController();
      try {
        const headers = this.client.headers({ accept: "text/event-stream" });
        if (this.lastId !== undefined) headers["last-event-id"] = String(this.lastId);
        const res = await fetch(`${this.client.base}/admin/events`, { headers, signal: this.controller.signal, cache: "no-store" });
        if (res.status === 401) {
          this.client.forgetKey();
          this.client.setKeyNeeded(true);
          this.setStatus("down");
          await new Promise<void>((resolve) => {
            const off = this.client.onKeyNeeded((needed) => {
              if (!needed) {
                queueMicrotask(() => off());
                resolve();
              }
            });
          });
          continue;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        this.client.setReachable(true);
        this.setStatus("open");
        await this.read(res.body);
      } catch {
        // fall through to the retry below
      }
      if (this.stopped) return;
      this.setStatus("down");
      // A reachable gateway whose stream ended (restart) answers the next try at once.
      try {
        await fetch(`${this.client.base}/health`, { cache: "no-store" });
        this.client.setReachable(true);
      } catch {
        this.client.setReachable(false);
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.parse(block);
      }
    }
  }

  private parse(block: string): void {
    let type = "message";
    let id: number | undefined;
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "id" && /^\d+$/.test(value)) id = Number(value);
      else if (field === "data") data.push(value);
    }
    if (data.length === 0) return;
    if (id !== undefined) this.lastId = id;
    try {
      this.emit({ id, type, data: JSON.parse(data.join("\n")) as LiveEvent["data"] });
    } catch {
      // a frame that is not JSON is not ours: skip it
    }
  }
}
