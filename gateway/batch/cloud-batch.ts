// A small client of a cloud provider's Batch API (OpenAI's Files + Batches): upload a JSONL
// of requests, create a batch, poll it until it ends, read its output and error files. The
// local queue's overflow (overflow.ts) uses it to send what its own deadline cannot meet.
// It speaks only the wire format; what to send and what to do with the answers is the
// caller's business.
import { setTimeout as sleep } from "node:timers/promises";

/** One line of a batch input file (OpenAI's BatchRequestInput). */
export interface CloudRequestLine {
  custom_id: string;
  method: "POST";
  url: string;
  body: Record<string, unknown>;
}

/** One line of a batch output or error file (OpenAI's BatchRequestOutput). */
export interface CloudResultLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string | null; body: unknown } | null;
  error: { code: string | null; message: string } | null;
}

export type CloudBatchStatus = "validating" | "failed" | "in_progress" | "finalizing" | "completed" | "expired" | "cancelling" | "cancelled";

/** The fields of OpenAI's Batch object this client reads. */
export interface CloudBatch {
  id: string;
  status: CloudBatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts?: { total: number; completed: number; failed: number } | null;
  errors?: { data?: { code?: string; message?: string; line?: number | null }[] } | null;
}

/** The statuses after which a batch changes no more. */
export const CLOUD_TERMINAL: readonly CloudBatchStatus[] = ["completed", "failed", "expired", "cancelled"];

/** A refusal or failure of the cloud API, with its HTTP status when there was one. */
export class CloudBatchError extends Error {
  readonly status: number | undefined;
  readonly code: string | null;
  constructor(message: string, status?: number, code: string | null = null) {
    super(message);
    this.name = "CloudBatchError";
    this.status = status;
    this.code = code;
  }
  /** Worth asking again later: no answer, 408, 409 (a conflict that passes), 429, 5xx. */
  get retryable(): boolean {
    return this.status === undefined || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

export interface CloudBatchClientOptions {
  /** The API's base URL with its version, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  apiKey?: string;
  /** Extra headers (OpenAI-Organization, a proxy's token, ...). */
  headers?: Record<string, string>;
  /** Longest wait for one HTTP exchange (default 60 s; an upload of 200 MB needs its time). */
  requestTimeoutMs?: number;
}

export interface WaitOptions {
  signal?: AbortSignal;
  /** First pause between polls (default 1 s); it doubles while nothing changes, up to maxDelayMs. */
  initialDelayMs?: number;
  /** Longest pause between polls (default 30 s). */
  maxDelayMs?: number;
  /** Polls that may fail in a row (network, 429, 5xx) before the wait gives up (default 10). */
  maxConsecutiveErrors?: number;
  /** Sees every batch object polled. */
  onUpdate?: (batch: CloudBatch) => void;
}

export class CloudBatchClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(opts: CloudBatchClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.headers = { ...opts.headers, ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
  }

  /** Uploads the lines as one JSONL file with purpose "batch"; returns the file's id. */
  async uploadRequests(lines: readonly CloudRequestLine[], filename = "labgate-overflow.jsonl", signal?: AbortSignal): Promise<string> {
    const text = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new Blob([text], { type: "application/jsonl" }), filename);
    const file = (await this.request("POST", "/files", { body: form, signal })) as { id?: unknown };
    if (typeof file.id !== "string") throw new CloudBatchError("the file upload answered without a file id");
    return file.id;
  }

  async createBatch(
    params: { input_file_id: string; endpoint: string; completion_window?: string; metadata?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<CloudBatch> {
    const body = JSON.stringify({ completion_window: "24h", ...params });
    return asBatch(await this.request("POST", "/batches", { body, json: true, signal }));
  }

  async retrieveBatch(id: string, signal?: AbortSignal): Promise<CloudBatch> {
    return asBatch(await this.request("GET", `/batches/${encodeURIComponent(id)}`, { signal }));
  }

  async cancelBatch(id: string, signal?: AbortSignal): Promise<CloudBatch> {
    return asBatch(await this.request("POST", `/batches/${encodeURIComponent(id)}/cancel`, { signal }));
  }

  /** A file's content as text (output and error files are JSONL). */
  async fileText(id: string, signal?: AbortSignal): Promise<string> {
    return (await this.request("GET", `/files/${encodeURIComponent(id)}/content`, { signal, text: true })) as string;
  }

  /** The parsed lines of an output or error file. */
  async resultLines(fileId: string, signal?: AbortSignal): Promise<ParsedResults> {
    return parseResultLines(await this.fileText(fileId, signal));
  }

  /**
   * Polls a batch until it reaches a terminal status and returns it. The pause between
   * polls starts at initialDelayMs and doubles while the batch's counts do not move (a
   * cloud batch takes minutes to hours; asking every second all that time is waste).
   * Transient failures are retried with the same backoff; others throw.
   */
  async waitUntilEnded(id: string, opts: WaitOptions = {}): Promise<CloudBatch> {
    const initial = opts.initialDelayMs ?? 1000;
    const max = Math.max(initial, opts.maxDelayMs ?? 30_000);
    const maxErrors = opts.maxConsecutiveErrors ?? 10;
    let delay = initial;
    let errors = 0;
    let seen = "";
    for (;;) {
      opts.signal?.throwIfAborted();
      try {
        const batch = await this.retrieveBatch(id, opts.signal);
        errors = 0;
        opts.onUpdate?.(batch);
        if (CLOUD_TERMINAL.includes(batch.status)) return batch;
        const progress = `${batch.status}:${batch.request_counts?.completed ?? 0}:${batch.request_counts?.failed ?? 0}`;
        delay = progress !== seen ? initial : Math.min(max, delay * 2);
        seen = progress;
      } catch (err) {
        if (opts.signal?.aborted || !(err instanceof CloudBatchError) || !err.retryable || ++errors >= maxErrors) throw err;
        delay = Math.min(max, delay * 2);
      }
      await sleep(delay, undefined, { signal: opts.signal });
    }
  }

  private async request(
    method: string,
    path: string,
    opts: { body?: string | FormData; json?: boolean; text?: boolean; signal?: AbortSignal },
  ): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = { ...this.headers, accept: opts.text ? "*/*" : "application/json" };
    if (opts.json) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(this.base + path, { method, headers, body: opts.body, signal });
    } catch (err) {
      opts.signal?.throwIfAborted();
      const why = timeout.aborted ? `no answer within ${Math.round(this.timeoutMs / 1000)} s` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
      throw new CloudBatchError(`${method} ${path}: ${why}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = text.slice(0, 300);
      let code: string | null = null;
      try {
        const e = (JSON.parse(text) as { error?: { message?: unknown; code?: unknown } }).error;
        if (typeof e?.message === "string") message = e.message;
        if (typeof e?.code === "string") code = e.code;
      } catch {
        // not JSON: the text's start is the message
      }
      throw new CloudBatchError(`${method} ${path}: ${res.status} ${message}`, res.status, code);
    }
    if (opts.text) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new CloudBatchError(`${method} ${path}: the answer is not JSON`, res.status);
    }
  }
}

function asBatch(value: unknown): CloudBatch {
  const b = value as Partial<CloudBatch> | null;
  if (!b || typeof b.id !== "string" || typeof b.status !== "string") throw new CloudBatchError("the answer is not a batch object");
  return { output_file_id: null, error_file_id: null, ...b } as CloudBatch;
}

export interface ParsedResults {
  lines: CloudResultLine[];
  /** Lines that were not result lines (not JSON, no custom_id): counted, never guessed at. */
  malformed: number;
}

/** Splits an output or error file into result lines. */
export function parseResultLines(text: string): ParsedResults {
  const lines: CloudResultLine[] = [];
  let malformed = 0;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    let v: Partial<CloudResultLine>;
    try {
      v = JSON.parse(raw) as Partial<CloudResultLine>;
    } catch {
      malformed++;
      continue;
    }
    if (!v || typeof v !== "object" || typeof v.custom_id !== "string" || (v.response == null && v.error == null)) {
      malformed++;
      continue;
    }
    lines.push({ id: typeof v.id === "string" ? v.id : "", custom_id: v.custom_id, response: v.response ?? null, error: v.error ?? null });
  }
  return { lines, malformed };
}
