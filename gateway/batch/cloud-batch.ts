// A small client of a cloud provider's Batch API (OpenAI's Files + Batches): upload a JSONL
// of requests, create a batch, poll it until it ends, read its output and error files. The
// local queue's overflow (overflow.ts) uses it to send what its own deadline cannot meet.
// It speaks only the wire format; what to send and what to do with the answers is the
// caller's business.
//
// Its failures are the gateway's: UpstreamError classes from the same status
// classification (classifyHttpError), the same reading of an error body
// (upstreamErrorMessage), Retry-After honoured (parseRetryAfter), and every message
// cleaned by a Redactor that knows the key and header values this client sends — a cloud
// that quotes the Authorization header in its 401 must not put the key into a log line.
// Transport: fetch (undici), since uploads are multipart and providers/http.ts's send()
// speaks JSON bodies only.
import { setTimeout as sleep } from "node:timers/promises";
import { classifyHttpError, fromNetworkError, parseRetryAfter, UpstreamError } from "../providers/errors.ts";
import { upstreamErrorMessage } from "../providers/http.ts";
import { Redactor } from "../providers/redact.ts";
import { readObjectLine } from "./jsonl.ts";

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

/**
 * A refusal or failure of the cloud API: an UpstreamError (class, status, Retry-After; its
 * `retryable` is the gateway's: no answer, 408, 429, 5xx) with the API's error code. Its
 * message is already cleaned of credentials.
 */
export class CloudBatchError extends UpstreamError {
  readonly code: string | null;
  constructor(errorClass: UpstreamError["errorClass"], message: string, opts: { status?: number; code?: string | null; retryAfterMs?: number } = {}) {
    super(errorClass, message, {
      ...(opts.status === undefined ? {} : { upstreamStatus: opts.status }),
      ...(opts.retryAfterMs === undefined ? {} : { retryAfterMs: opts.retryAfterMs }),
    });
    this.name = "CloudBatchError";
    this.code = opts.code ?? null;
  }
  /** The HTTP status, when the API answered. */
  get status(): number | undefined {
    return this.upstreamStatus;
  }
}

/** The longest Retry-After honoured (a cloud asking for hours is asked again sooner). */
const MAX_RETRY_AFTER_MS = 10 * 60_000;

export interface CloudBatchClientOptions {
  /** The API's base URL with its version, e.g. https://api.openai.com/v1. */
  baseUrl: string;
  apiKey?: string;
  /** Extra headers (OpenAI-Organization, a proxy's token, ...). */
  headers?: Record<string, string>;
  /** Longest wait for one HTTP exchange (default 60 s; an upload of 200 MB needs its time). */
  requestTimeoutMs?: number;
  /** Cleans error messages (the gateway's own, to share its secrets); this client adds its key and header values to it. Default: its own. */
  redactor?: Redactor;
}

export interface WaitOptions {
  signal?: AbortSignal;
  /** First pause between polls (default 1 s); it doubles while nothing changes, up to maxDelayMs. */
  initialDelayMs?: number;
  /** Longest pause between polls (default 30 s). */
  maxDelayMs?: number;
  /** Polls that may fail in a row (network, 429, 5xx) before the wait gives up (default 10). A Retry-After is waited for (up to 10 min). */
  maxConsecutiveErrors?: number;
  /** Sees every batch object polled. */
  onUpdate?: (batch: CloudBatch) => void;
}

export class CloudBatchClient {
  private readonly base: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private readonly redactor: Redactor;

  constructor(opts: CloudBatchClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.headers = { ...opts.headers, ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}) };
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.redactor = opts.redactor ?? new Redactor();
    // Everything this client sends that a server could quote back.
    this.redactor.add(opts.apiKey, ...Object.values(opts.headers ?? {}));
  }

  /** Uploads the lines as one JSONL file with purpose "batch"; returns the file's id. */
  async uploadRequests(lines: readonly CloudRequestLine[], filename = "labgate-overflow.jsonl", signal?: AbortSignal): Promise<string> {
    const text = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
    const form = new FormData();
    form.append("purpose", "batch");
    form.append("file", new Blob([text], { type: "application/jsonl" }), filename);
    const file = (await this.request("POST", "/files", { body: form, signal })) as { id?: unknown };
    if (typeof file.id !== "string") throw new CloudBatchError("malformed", "the file upload answered without a file id");
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
        // The cloud's own word on when to ask again wins over the backoff (within reason).
        delay = Math.max(Math.min(max, delay * 2), Math.min(MAX_RETRY_AFTER_MS, err.retryAfterMs ?? 0));
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
    let text: string;
    try {
      res = await fetch(this.base + path, { method, headers, body: opts.body, signal });
      text = await res.text();
    } catch (err) {
      opts.signal?.throwIfAborted();
      if (timeout.aborted) throw new CloudBatchError("timeout", `${method} ${path}: no answer within ${Math.round(this.timeoutMs / 1000)} s`);
      const e = fromNetworkError(err);
      // fetch says "fetch failed"; the reason is its cause's.
      const cause = (err as Error).cause as (Error & { code?: string }) | undefined;
      const why = cause?.code ?? cause?.message ?? e.message;
      throw new CloudBatchError(e.errorClass, this.redactor.clean(`${method} ${path}: ${why}`));
    }
    if (!res.ok) {
      const message = upstreamErrorMessage(text) || res.statusText || `HTTP ${res.status}`;
      let code: string | null = null;
      try {
        const e = (JSON.parse(text) as { error?: { code?: unknown } }).error;
        if (typeof e?.code === "string") code = e.code;
      } catch {
        // not JSON: no code
      }
      const full = `${method} ${path}: ${res.status} ${message}`;
      throw new CloudBatchError(classifyHttpError(res.status, message), this.redactor.clean(full), {
        status: res.status,
        code,
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      });
    }
    if (opts.text) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new CloudBatchError("malformed", `${method} ${path}: the answer is not JSON`, { status: res.status });
    }
  }
}

function asBatch(value: unknown): CloudBatch {
  const b = value as Partial<CloudBatch> | null;
  if (!b || typeof b.id !== "string" || typeof b.status !== "string") throw new CloudBatchError("malformed", "the answer is not a batch object");
  return { output_file_id: null, error_file_id: null, ...b } as CloudBatch;
}

export interface ParsedResults {
  lines: CloudResultLine[];
  /** Lines that were not result lines (not JSON, no custom_id): counted, never guessed at. */
  malformed: number;
}

/**
 * Splits an output or error file into result lines. Each line is read as jsonl.ts reads an
 * input line (JSON object, byte order mark, nesting depth bounded: a hostile cloud's body is
 * walked later by the PII redaction); what makes it a result line is checked here.
 */
export function parseResultLines(text: string): ParsedResults {
  const lines: CloudResultLine[] = [];
  let malformed = 0;
  let n = 0;
  for (const raw of text.split("\n")) {
    n++;
    if (raw.trim() === "") continue;
    const read = readObjectLine(raw, n);
    if ("code" in read) {
      malformed++;
      continue;
    }
    const v = read.value as Partial<CloudResultLine>;
    if (typeof v.custom_id !== "string" || (v.response == null && v.error == null)) {
      malformed++;
      continue;
    }
    lines.push({ id: typeof v.id === "string" ? v.id : "", custom_id: v.custom_id, response: v.response ?? null, error: v.error ?? null });
  }
  return { lines, malformed };
}
