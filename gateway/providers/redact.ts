// What an upstream says in its errors reaches clients (the error body, a mid-stream
// error event, /health). Upstreams echo what they were sent — a provider that
// quotes the Authorization header in its 401 hands the lab's cloud key to whoever
// asked — and leak their own file paths and stack traces. A Redactor cleans those
// messages: every configured secret and anything shaped like a bearer token or an
// `sk-…` key becomes [REDACTED], stack lines and absolute paths go, whitespace is
// collapsed and the length bounded. The full text (secrets redacted the same way)
// goes to the server log at debug level.
//
// One Redactor per gateway, built in the composition root with every resolved
// secret (providers' keys and header values, server.master_key / admin_key), and
// handed to each adapter: no module-level state.
import { UpstreamError } from "./errors.ts";

export const REDACTED = "[REDACTED]";

export interface RedactorOptions {
  /** Secret values to redact from the start (more can be added later). */
  secrets?: Iterable<string | undefined>;
  /** Longest message a client gets (default 500 characters). */
  maxLength?: number;
  /** Where the full text of each upstream error goes, secrets redacted: the server log, at debug level. */
  onFullText?: (text: string, info: { provider?: string; errorClass: string }) => void;
}

/** Secrets shorter than this are not searched for: "x" would blank every x in every message. */
const MIN_SECRET_LENGTH = 4;
/** The longest full text handed to onFullText. */
const MAX_FULL_TEXT = 16 * 1024;

// Credentials whatever the configuration says.
const TOKEN_PATTERNS: [RegExp, string][] = [
  // An echoed header: authorization / x-api-key / api-key / proxy-authorization, as `name: value` or JSON "name":"value".
  [/\b((?:proxy-)?authorization|x-api-key|api-key|x-goog-api-key)(["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}]+/gi, `$1$2${REDACTED}`],
  [/\b(bearer)\s+[A-Za-z0-9._~+/=-]{16,}/gi, `$1 ${REDACTED}`],
  [/\bBasic\s+[A-Za-z0-9+/]{12,}={0,2}/g, `Basic ${REDACTED}`],
  [/\bsk-[A-Za-z0-9_-]{6,}/g, REDACTED],
  // Other common key shapes: Google (AIza…), GitHub/Hugging Face tokens, AWS access key ids, JWTs.
  [/\b(?:AIza[0-9A-Za-z_-]{20,}|gh[pousr]_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})\b/g, REDACTED],
];

// A line of a stack trace: JavaScript (`    at f (/x/y.js:1:2)`), Python (`  File "/x.py", line 3, in f`, `Traceback (…)`), Java/Go-ish frames.
const STACK_LINE = /^[ \t]*(?:at\s+.*(?::\d+:\d+\)?|\(native\)|<anonymous>\)?)[ \t]*|File\s+".*",\s+line\s+\d+.*|Traceback \(most recent call last\):.*|goroutine \d+ \[.*|\S+\.(?:go|py|rs|java|cc|cpp|c|h):\d+.*)$/gm;
// Absolute paths: POSIX ones with two or more segments (not part of a URL: no scheme, host or word right before), file:// URLs, Windows drive paths.
const FILE_URL = /\bfile:\/\/\/?[^\s"'()<>]*/gi;
const POSIX_PATH = /(^|[\s"'(=\[,])\/(?!(?:v\d+|api|openai)\/)(?:[\w.@~+-]+\/)+[\w.@~+-]*(?::\d+(?::\d+)?)?/g;
const WINDOWS_PATH = /\b[A-Za-z]:\\(?:[^\\\s"'<>|:*?]+\\)*[^\\\s"'<>|:*?]*/g;

export class Redactor {
  private readonly secrets = new Set<string>();
  private secretPattern: RegExp | undefined;
  private readonly maxLength: number;
  private readonly onFullText: RedactorOptions["onFullText"];

  constructor(opts: RedactorOptions = {}) {
    this.maxLength = opts.maxLength ?? 500;
    this.onFullText = opts.onFullText;
    if (opts.secrets) this.add(...opts.secrets);
  }

  /** Secrets to redact from now on (empty and very short values are skipped). */
  add(...values: (string | undefined)[]): void {
    let changed = false;
    for (const v of values) {
      if (typeof v !== "string" || v.length < MIN_SECRET_LENGTH) continue;
      // As sent, and as an upstream may quote it back: JSON-escaped and URL-encoded.
      for (const form of [v, JSON.stringify(v).slice(1, -1), encodeURIComponent(v)]) {
        if (!this.secrets.has(form)) {
          this.secrets.add(form);
          changed = true;
        }
      }
    }
    if (changed) {
      // Longest first, so a secret that contains another is replaced whole.
      const sorted = [...this.secrets].sort((a, b) => b.length - a.length);
      this.secretPattern = new RegExp(sorted.map(escapeRegExp).join("|"), "g");
    }
  }

  /** The text with every secret and token-shaped string replaced; nothing else changed. */
  redact(text: string): string {
    let out = this.secretPattern ? text.replace(this.secretPattern, REDACTED) : text;
    for (const [re, to] of TOKEN_PATTERNS) out = out.replace(re, to);
    return out;
  }

  /** What a client may see: redacted, without stack lines or absolute paths, whitespace collapsed, bounded. */
  clean(text: string): string {
    let out = this.redact(text);
    out = out.replace(STACK_LINE, " ");
    out = out.replace(FILE_URL, "[path]").replace(POSIX_PATH, "$1[path]").replace(WINDOWS_PATH, "[path]");
    out = out.replace(/\s+/g, " ").trim();
    if (out.length > this.maxLength) out = out.slice(0, this.maxLength - 1) + "…";
    return out;
  }

  /**
   * The error as a client may see it: the same class, status and Retry-After with a
   * cleaned message. The full message (redacted) goes to onFullText. The original
   * is not kept as the cause: loggers print causes, and its message is the raw text.
   */
  error(err: UpstreamError, provider?: string): UpstreamError {
    const cleaned = this.clean(err.message);
    // A client that went away is not an upstream saying anything.
    if (err.errorClass !== "cancelled") this.onFullText?.(this.redact(err.message.length > MAX_FULL_TEXT ? err.message.slice(0, MAX_FULL_TEXT) + "…" : err.message), {
      ...(provider === undefined ? {} : { provider }),
      errorClass: err.errorClass,
    });
    if (cleaned === err.message) return err;
    return new UpstreamError(err.errorClass, cleaned, {
      ...(err.upstreamStatus === undefined ? {} : { upstreamStatus: err.upstreamStatus }),
      ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }),
    });
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
