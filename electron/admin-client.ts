// The main process's way to the gateway: its admin API with Node's fetch (undici), which
// sends no Origin header, so the gateway's cross-origin guard (meant for web pages) does
// not apply; the admin key, when one is configured, as a bearer header. And the live
// event stream, followed with Last-Event-ID reconnects, applied to a LabState.
import { applyEvent, applyLoadedModels, applyProviders, disconnected, emptyLabState, refetchAfter, type LabState } from "./lab-state.ts";

type Json = Record<string, unknown>;

export class AdminError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "AdminError";
    this.status = status;
  }
}

export class AdminClient {
  readonly origin: string;
  private readonly key: string | undefined;

  constructor(origin: string, adminKey?: string) {
    this.origin = origin.replace(/\/$/, "");
    this.key = adminKey || undefined;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { ...extra, authorization: `Bearer ${this.key}` } : extra;
  }

  async get(path: string, timeoutMs = 10_000): Promise<Json> {
    return this.call("GET", path, timeoutMs);
  }

  async post(path: string, timeoutMs = 60_000): Promise<Json> {
    return this.call("POST", path, timeoutMs);
  }

  private async call(method: string, path: string, timeoutMs: number): Promise<Json> {
    const res = await fetch(this.origin + path, { method, headers: this.headers(), signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: Json = {};
    try {
      body = text ? (JSON.parse(text) as Json) : {};
    } catch {
      // not JSON: the status says enough
    }
    if (!res.ok) {
      const msg = (body.error as Json | undefined)?.message;
      throw new AdminError(res.status, typeof msg === "string" ? msg : `HTTP ${res.status} from ${method} ${path}`);
    }
    return body;
  }

  setProviderEnabled(name: string, enabled: boolean): Promise<Json> {
    return this.post(`/admin/providers/${encodeURIComponent(name)}/${enabled ? "enable" : "disable"}`);
  }

  processAction(name: string, op: "start" | "stop" | "restart"): Promise<Json> {
    return this.post(`/admin/lab/processes/${encodeURIComponent(name)}/${op}`, 120_000);
  }

  unload(provider: string, model: string): Promise<Json> {
    return this.post(`/admin/lab/models/${encodeURIComponent(model)}/unload?provider=${encodeURIComponent(provider)}`);
  }

  resetBreaker(deployment: string): Promise<Json> {
    return this.post(`/admin/circuit-breaker/reset?deployment=${encodeURIComponent(deployment)}`);
  }
}

export interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Splits an SSE text stream into events (the subset the gateway writes: id, event, data
 * lines). Incremental, line by line: a line ends at CRLF, LF or CR, wherever the chunks
 * are cut, so a CR that ends one chunk and the LF that starts the next are one line break.
 */
export class SseParser {
  /** The line read so far (its end not yet seen). */
  private line = "";
  /** The last chunk ended with CR: an LF at the start of the next one belongs to it. */
  private afterCr = false;
  private id: string | undefined;
  private event = "message";
  private data: string[] = [];

  push(chunk: string): SseMessage[] {
    const out: SseMessage[] = [];
    let i = this.afterCr && chunk.startsWith("\n") ? 1 : 0;
    if (chunk.length > 0) this.afterCr = false;
    let start = i;
    for (; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.takeLine(this.line + chunk.slice(start, i), out);
      this.line = "";
      if (c === 13) {
        if (i + 1 === chunk.length) this.afterCr = true;
        else if (chunk.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.line += chunk.slice(start);
    return out;
  }

  private takeLine(line: string, out: SseMessage[]): void {
    if (line === "") {
      // A blank line ends the event (one without data is none).
      if (this.data.length > 0) out.push({ id: this.id, event: this.event, data: this.data.join("\n") });
      this.id = undefined;
      this.event = "message";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") this.id = value;
    else if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }
}

export interface FollowerOptions {
  /** The admin client (only `origin`, `headers` and `get` are used). */
  client: Pick<AdminClient, "origin" | "headers" | "get">;
  /** Called with the new state after each applied event (main.ts coalesces). */
  onState: (state: LabState, event: { type: string; data: Json; before: LabState }) => void;
  retryMs?: number;
}

/** Follows /admin/events for as long as it runs, reconnecting; the state is kept across reconnects. */
export class LabFollower {
  private readonly o: FollowerOptions;
  private stateValue: LabState = emptyLabState();
  private lastId: string | undefined;
  private controller: AbortController | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  /** The number of the latest refetch asked for, per kind. */
  private readonly refetchSeq = { providers: 0, models: 0 };

  constructor(opts: FollowerOptions) {
    this.o = opts;
  }

  get state(): LabState {
    return this.stateValue;
  }

  start(): void {
    this.stopped = false;
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.controller?.abort();
    await this.running;
    this.running = undefined;
  }

  /** Apply a change the app made itself or fetched (so the menu does not wait for the event). */
  update(type: string, data: Json): void {
    const before = this.stateValue;
    this.stateValue = applyEvent(before, type, data);
    this.o.onState(this.stateValue, { type, data, before });
  }

  /**
   * Fetch the providers or the loaded models again. Refetches overlap (each event may ask for
   * one): an answer is applied only if no later refetch of the same thing has been asked for
   * since, so an older answer arriving last cannot undo a newer one. It is applied to the state
   * as it is when the answer arrives (events applied meanwhile are kept).
   */
  async refetch(what: "providers" | "models"): Promise<void> {
    const seq = ++this.refetchSeq[what];
    try {
      const body = await this.o.client.get(what === "providers" ? "/admin/providers" : "/admin/lab/models");
      if (seq !== this.refetchSeq[what]) return; // a later refetch's answer is (or will be) the one applied
      const before = this.stateValue;
      this.stateValue = what === "providers" ? applyProviders(before, body) : applyLoadedModels(before, body);
      this.o.onState(this.stateValue, { type: `refetch:${what}`, data: {}, before });
    } catch {
      // the next event or reconnect tries again
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.controller = new AbortController();
      try {
        const headers = this.o.client.headers({ accept: "text/event-stream" });
        if (this.lastId !== undefined) headers["last-event-id"] = this.lastId;
        const res = await fetch(`${this.o.client.origin}/admin/events`, { headers, signal: this.controller.signal });
        if (res.status !== 200 || !res.body) {
          await res.body?.cancel();
          this.setDisconnected(res.status === 401 ? "the admin key is missing or wrong (LABGATE_ADMIN_KEY)" : `events answered HTTP ${res.status}`);
        } else {
          // A reconnect that the gateway can catch up gets the missed events and no snapshot: connected again now.
          if (this.lastId !== undefined) {
            const before = this.stateValue;
            this.stateValue = { ...before, connected: true, connectionNote: null };
            this.o.onState(this.stateValue, { type: "reconnected", data: {}, before });
          }
          const parser = new SseParser();
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            for (const e of parser.push(value)) this.handle(e.id, e.event, e.data);
          }
          this.setDisconnected("the gateway closed the event stream");
        }
      } catch (err) {
        if (this.stopped) break;
        const cause = (err as { cause?: { code?: string } }).cause?.code;
        this.setDisconnected(cause === "ECONNREFUSED" ? "gateway not reachable" : `gateway not reachable (${(err as Error).message})`);
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, this.o.retryMs ?? 1000));
    }
  }

  private setDisconnected(note: string): void {
    if (this.stopped) return;
    const before = this.stateValue;
    this.stateValue = disconnected(before, note);
    this.o.onState(this.stateValue, { type: "disconnected", data: { note }, before });
  }

  private handle(id: string | undefined, type: string, text: string): void {
    let data: Json;
    try {
      data = JSON.parse(text) as Json;
    } catch {
      return;
    }
    if (id !== undefined) this.lastId = id;
    this.update(type, data);
    for (const what of refetchAfter(type, data)) void this.refetch(what);
  }
}
