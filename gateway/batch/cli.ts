// `labgate batch submit | status | download | list | cancel`: the batch queue from the
// command line. It talks to a running gateway over HTTP with OpenAI's Batch API paths
// (/v1/files, /v1/batches), so it works the same against any server that speaks them.
// Where: --url, else LABGATE_URL, else the config's server.host:port. The key:
// LABGATE_API_KEY, else the config's server.master_key reference — the latter only to that
// config's own server or to loopback: a --url elsewhere (plain http to another machine,
// a typo, a proxy) must not receive this gateway's master key.
import { createWriteStream, openAsBlob, statSync } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { basename } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_CONFIG_FILE } from "../config/defaults.ts";
import { formatProblem, loadConfigFile } from "../config/load.ts";
import { createSecretResolver } from "../config/secrets.ts";

export const BATCH_USAGE = `Usage:
  labgate batch submit FILE [--profile P] [--endpoint E] [--window 24h] [--follow]   upload a JSONL and start a batch
  labgate batch status ID [--every SECONDS]     follow a batch until it ends (a progress bar on a terminal)
  labgate batch download ID [-o FILE] [--errors]   its output file (or error file) to FILE or stdout
  labgate batch list [--limit N]                the newest batches
  labgate batch cancel ID

Common options: --url URL (default: LABGATE_URL, else the config's server.host:port), --config FILE
The key: LABGATE_API_KEY, else the config's server.master_key (sent only to the config's own
server.host or to loopback; any other URL needs LABGATE_API_KEY).

Exit status: 0 when it worked (status and submit --follow: the batch completed with no failed
request); 1 when the gateway refused or could not be reached, or a followed batch ended with
failed requests, failed, expired or was cancelled; 2 for a mistake on the command line.
submit prints the batch id alone on stdout (ID=$(labgate batch submit FILE) works, with --follow
too: its progress goes to stderr).`;

const TERMINAL = new Set(["completed", "failed", "expired", "cancelled"]);

/** The fields of a batch object the CLI shows. */
interface BatchView {
  id: string;
  status: string;
  endpoint: string;
  created_at: number;
  expires_at: number | null;
  completion_window: string;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number } | null;
  metadata: Record<string, string> | null;
  errors: { data?: { code?: string; message?: string; line?: number | null }[] } | null;
}

export interface CliIo {
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  err: NodeJS.WritableStream;
}

/** A mistake on the command line: one line, exit 2. */
class UsageError extends Error {}
/** The gateway refused or could not be reached: one line, exit 1. */
class RemoteError extends Error {}

const COMMON = { url: { type: "string" }, config: { type: "string", short: "c" } } as const;

export async function batchCommand(args: string[], env: NodeJS.ProcessEnv = process.env, io: CliIo = { out: process.stdout, err: process.stderr }): Promise<number> {
  const [sub, ...rest] = args;
  try {
    switch (sub) {
      case "submit":
        return await submit(rest, env, io);
      case "status":
        return await status(rest, env, io);
      case "download":
        return await download(rest, env, io);
      case "list":
        return await list(rest, env, io);
      case "cancel":
        return await cancel(rest, env, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out.write(BATCH_USAGE + "\n");
        return sub === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown batch command "${sub}" (submit, status, download, list, cancel; see labgate batch --help)`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`labgate: ${err.message}\n`);
      return 2;
    }
    if (err instanceof RemoteError) {
      io.err.write(`labgate: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

// ---- the subcommands ----

async function submit(args: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { profile: { type: "string" }, endpoint: { type: "string" }, window: { type: "string" }, follow: { type: "boolean" }, every: { type: "string" } }, "submit FILE");
  const file = one(positionals, "FILE", "submit FILE");
  const size = statSync(file, { throwIfNoEntry: false });
  if (!size?.isFile()) throw new UsageError(`${file}: no such file`);
  const api = await connect(values, env);
  const form = new FormData();
  form.append("purpose", "batch");
  // openAsBlob reads the file as it is sent: a 200 MB input never sits in memory.
  form.append("file", await openAsBlob(file, { type: "application/jsonl" }), basename(file));
  const uploaded = (await api.call("POST", "/files", form)) as { id: string; bytes: number; lines?: number };
  const metadata = values.profile ? { profile: values.profile } : undefined;
  const batch = (await api.call("POST", "/batches", {
    input_file_id: uploaded.id,
    endpoint: values.endpoint ?? "/v1/chat/completions",
    completion_window: values.window ?? "24h",
    ...(metadata ? { metadata } : {}),
  })) as BatchView;
  io.err.write(`uploaded ${basename(file)} as ${uploaded.id} (${formatBytes(uploaded.bytes)}); batch ${batch.id} is ${batch.status}${values.profile ? ` (profile ${values.profile})` : ""}\n`);
  io.out.write(batch.id + "\n");
  if (!values.follow) {
    io.err.write(`follow it with: labgate batch status ${batch.id}\n`);
    return 0;
  }
  // The id alone on stdout, so ID=$(labgate batch submit ... --follow) works: the progress goes to stderr.
  return follow(api, batch.id, seconds(values.every), io.err as CliIo["out"]);
}

async function status(args: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { every: { type: "string" } }, "status ID");
  const id = one(positionals, "ID", "status ID");
  return follow(await connect(values, env), id, seconds(values.every), io.out);
}

async function download(args: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { output: { type: "string", short: "o" }, errors: { type: "boolean" } }, "download ID [-o FILE]");
  const id = one(positionals, "ID", "download ID [-o FILE]");
  const api = await connect(values, env);
  const b = (await api.call("GET", `/batches/${encodeURIComponent(id)}`)) as BatchView;
  const which = values.errors ? "error" : "output";
  const fileId = values.errors ? b.error_file_id : b.output_file_id;
  if (!fileId) {
    if (!TERMINAL.has(b.status)) throw new RemoteError(`batch ${b.id} is ${b.status}: its files are written when it ends (labgate batch status ${b.id} follows it)`);
    const other = values.errors ? (b.output_file_id ? " (it has an output file)" : "") : b.error_file_id ? ` (its error file: labgate batch download ${b.id} --errors)` : "";
    throw new RemoteError(`batch ${b.id} (${b.status}) has no ${which} file${other}`);
  }
  const res = await api.raw("GET", `/files/${encodeURIComponent(fileId)}/content`);
  const body = Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>);
  if (values.output === undefined || values.output === "-") {
    try {
      await pipeline(body, io.out, { end: false });
    } catch (err) {
      // `labgate batch download ID | head`: the reader went away; not a failure of ours.
      if ((err as NodeJS.ErrnoException).code === "EPIPE") return 0;
      // The gateway went away mid-file, a full disk behind the redirect, ...: one line, exit 1.
      throw new RemoteError(`the ${which} file of ${b.id} (${fileId}) was cut off: ${streamProblem(err)}`);
    }
    return 0;
  }
  // Written beside the target and renamed at the end: an interrupted download leaves no half file under its name.
  const temp = `${values.output}.part`;
  try {
    await pipeline(body, createWriteStream(temp));
    await rename(temp, values.output);
  } catch (err) {
    await rm(temp, { force: true });
    throw new RemoteError(`cannot download to ${values.output}: ${streamProblem(err)}`);
  }
  io.err.write(`${which} file of ${b.id} (${fileId}) written to ${values.output}\n`);
  return 0;
}

async function list(args: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { limit: { type: "string" } }, "list [--limit N]");
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}" (usage: labgate batch list [--limit N])`);
  const limit = values.limit === undefined ? 20 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new UsageError(`--limit must be an integer from 1 to 100, got "${values.limit}"`);
  const api = await connect(values, env);
  const page = (await api.call("GET", `/batches?limit=${limit}`)) as { data: BatchView[]; has_more: boolean };
  if (page.data.length === 0) {
    io.out.write("No batches yet: labgate batch submit FILE starts one.\n");
    return 0;
  }
  const rows = page.data.map((b) => {
    const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
    return [b.id, b.status, `${c.completed + c.failed}/${c.total}`, String(c.failed), b.metadata?.profile ?? "-", formatTime(b.created_at), b.endpoint];
  });
  io.out.write(table(["ID", "STATUS", "DONE", "FAILED", "PROFILE", "CREATED", "ENDPOINT"], rows));
  if (page.has_more) io.out.write(`(newest ${limit} shown; --limit N shows up to 100)\n`);
  return 0;
}

async function cancel(args: string[], env: NodeJS.ProcessEnv, io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {}, "cancel ID");
  const id = one(positionals, "ID", "cancel ID");
  const b = (await (await connect(values, env)).call("POST", `/batches/${encodeURIComponent(id)}/cancel`)) as BatchView;
  io.out.write(`${b.id} ${b.status}\n`);
  return 0;
}

// ---- following a batch ----

/**
 * Polls the batch until it ends, writing to `out`: a progress bar redrawn on a terminal, one
 * line per change otherwise. Exit 0 only when it completed with no failed request: a batch
 * whose every item failed is "completed" too, and a script must not take that for success.
 */
async function follow(api: Api, id: string, everyMs: number, out: CliIo["out"]): Promise<number> {
  const tty = out.isTTY === true;
  let last = "";
  let b: BatchView;
  const started = Date.now();
  let firstDone: { at: number; done: number } | undefined;
  for (;;) {
    b = (await api.call("GET", `/batches/${encodeURIComponent(id)}`)) as BatchView;
    const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
    const done = c.completed + c.failed;
    firstDone ??= { at: Date.now(), done };
    const elapsed = (Date.now() - firstDone.at) / 1000;
    const rate = elapsed > 0 ? (done - firstDone.done) / elapsed : undefined;
    if (tty) {
      out.write(`\r${progressBar(b, { width: Math.max(20, Math.min(40, (out.columns ?? 80) - 50)), rate })}\u001b[K`);
    } else {
      const line = plainLine(b);
      if (line !== last) out.write(line + "\n");
      last = line;
    }
    if (TERMINAL.has(b.status)) break;
    await sleep(everyMs);
  }
  if (tty) out.write("\n");
  out.write(summary(b, (Date.now() - started) / 1000) + "\n");
  return b.status === "completed" && (b.request_counts?.failed ?? 0) === 0 ? 0 : 1;
}

/** One redrawn line: `[██████░░░░]  60%  600/1000  3 failed  in_progress  12.5/s  ETA 32s`. */
export function progressBar(b: Pick<BatchView, "status" | "request_counts">, opts: { width: number; rate?: number }): string {
  const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  const done = c.completed + c.failed;
  const share = c.total > 0 ? Math.min(1, done / c.total) : 0;
  const filled = Math.round(share * opts.width);
  const bar = "█".repeat(filled) + "░".repeat(opts.width - filled);
  const parts = [`[${bar}]`, `${String(Math.floor(share * 100)).padStart(3)}%`, `${done}/${c.total}`];
  if (c.failed > 0) parts.push(`${c.failed} failed`);
  parts.push(b.status);
  if (opts.rate !== undefined && opts.rate > 0 && !TERMINAL.has(b.status)) {
    parts.push(`${opts.rate >= 10 ? Math.round(opts.rate) : opts.rate.toFixed(1)}/s`);
    const left = c.total - done;
    if (left > 0) parts.push(`ETA ${formatDuration(left / opts.rate)}`);
  }
  return parts.join("  ");
}

function plainLine(b: BatchView): string {
  const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  return `${b.id} ${b.status} ${c.completed + c.failed}/${c.total} done (${c.completed} completed, ${c.failed} failed)`;
}

function summary(b: BatchView, elapsedS: number): string {
  const c = b.request_counts ?? { total: 0, completed: 0, failed: 0 };
  const files = [b.output_file_id ? `output ${b.output_file_id}` : "", b.error_file_id ? `errors ${b.error_file_id}` : ""].filter(Boolean).join(", ");
  const problems = b.errors?.data?.length ? `: ${b.errors.data.map((e) => e.message ?? e.code).join("; ")}` : "";
  const next = b.output_file_id ? `; labgate batch download ${b.id} -o results.jsonl` : "";
  return `${b.id} ${b.status} after ${formatDuration(elapsedS)}: ${c.completed} completed, ${c.failed} failed of ${c.total}${files ? ` (${files})` : ""}${problems}${next}`;
}

// ---- the gateway ----

interface Api {
  base: string;
  call(method: string, path: string, body?: unknown): Promise<unknown>;
  raw(method: string, path: string): Promise<Response>;
}

/** Where the gateway is and which key it wants, from the options, the environment and the config. */
async function connect(values: { url?: string; config?: string }, env: NodeJS.ProcessEnv): Promise<Api> {
  const given = values.url ?? (env.LABGATE_URL || undefined);
  const givenUrl = given === undefined ? undefined : httpUrl(given);
  let base: string;
  let key = env.LABGATE_API_KEY || undefined;
  if (given === undefined || key === undefined) {
    const configFile = values.config ?? (env.LABGATE_CONFIG || undefined) ?? fileURLToPath(DEFAULT_CONFIG_FILE);
    const loaded = await loadConfigFile(configFile);
    if (!loaded.ok) throw new UsageError(`cannot use the config ${configFile}: ${loaded.problems.map(formatProblem).join("; ")}`);
    const server = loaded.config.server;
    // A gateway listening on every address is reached on loopback.
    const host = env.LABGATE_HOST || server.host;
    const port = env.LABGATE_PORT || String(server.port);
    const h = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    base = given ?? `http://${h}:${port}`;
    if (key === undefined && server.master_key) {
      // This config's master key goes to this config's server (or loopback) only.
      if (givenUrl && !isLoopback(givenUrl.hostname) && givenUrl.hostname !== new URL(`http://${h}`).hostname) {
        throw new UsageError(`not sending ${configFile}'s server.master_key to ${givenUrl.host} (not that config's server ${h}, nor loopback): set LABGATE_API_KEY to that gateway's key`);
      }
      const r = createSecretResolver(env).resolve(server.master_key);
      if (!r.ok) throw new UsageError(`the gateway wants its master key (server.master_key is ${server.master_key}), but ${r.reason}: set LABGATE_API_KEY`);
      key = r.value;
    }
  } else base = given;
  httpUrl(base);
  const root = base.replace(/\/+$/, "").replace(/\/v1$/, "");
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const raw = async (method: string, path: string, body?: unknown): Promise<Response> => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    let res: Response;
    try {
      res = await fetch(`${root}/v1${path}`, init);
    } catch (err) {
      const cause = (err as Error).cause as (NodeJS.ErrnoException & { errors?: NodeJS.ErrnoException[] }) | undefined;
      const why = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (err as Error).message;
      throw new RemoteError(`no gateway answers at ${root} (${why}): is labgate serve running? (--url URL or LABGATE_URL)`);
    }
    if (!res.ok) {
      const text = await res.text();
      let message = text.slice(0, 200) || res.statusText;
      try {
        const e = (JSON.parse(text) as { error?: { message?: string } }).error;
        if (e?.message) message = e.message;
      } catch {
        // not OpenAI's error shape: the start of the text
      }
      const hint = res.status === 401 ? " (set LABGATE_API_KEY to the gateway's master key)" : "";
      throw new RemoteError(`${message}${hint} [HTTP ${res.status}]`);
    }
    return res;
  };
  return {
    base: root,
    raw,
    async call(method, path, body) {
      const res = await raw(method, path, body);
      try {
        return (await res.json()) as unknown;
      } catch {
        throw new RemoteError(`${root}/v1${path} did not answer JSON: is ${root} a labgate gateway?`);
      }
    },
  };
}

function httpUrl(text: string): URL {
  try {
    const u = new URL(text);
    if (u.protocol === "http:" || u.protocol === "https:") return u;
  } catch {
    // said below
  }
  throw new UsageError(`--url must be an http(s) URL such as http://127.0.0.1:4000, got "${text}"`);
}

/** localhost, 127.0.0.0/8 or ::1 (URL.hostname keeps an IPv6 address's brackets). */
function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A stream failure in a few words: its code and the cause undici keeps behind "terminated". */
function streamProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const cause = e.cause && e.cause !== e ? ` (${e.cause.code ?? e.cause.message})` : "";
  return `${e.code ?? e.message ?? String(err)}${cause}`;
}

// ---- arguments and formatting ----

type Options = Parameters<typeof parseArgs>[0] extends infer A ? (A extends { options?: infer O } ? O : never) : never;

function parse<O extends Options>(args: string[], options: O, usage: string) {
  try {
    return parseArgs({ args, options: { ...COMMON, ...options }, strict: true, allowPositionals: true }) as {
      values: { url?: string; config?: string } & { [K in keyof O]?: O[K] extends { type: "boolean" } ? boolean : string };
      positionals: string[];
    };
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") throw new UsageError(`unknown option ${quoted} (usage: labgate batch ${usage})`);
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") throw new UsageError(`${/--[a-z]+/.exec(message)?.[0] ?? "an option"} needs a value (usage: labgate batch ${usage})`);
    throw new UsageError(`${message.split("\n")[0]} (usage: labgate batch ${usage})`);
  }
}

function one(positionals: string[], name: string, usage: string): string {
  if (positionals.length !== 1 || positionals[0] === "") throw new UsageError(`${positionals.length === 0 ? `${name} is missing` : `one ${name} only`} (usage: labgate batch ${usage})`);
  return positionals[0]!;
}

function seconds(text: string | undefined): number {
  if (text === undefined) return 1000;
  const s = Number(text);
  if (!(s >= 0.05 && s <= 3600)) throw new UsageError(`--every must be a number of seconds from 0.05 to 3600, got "${text}"`);
  return s * 1000;
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ") + "\n";
  return line(head) + rows.map(line).join("");
}

function formatTime(s: number): string {
  return new Date(s * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function formatBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1048576).toFixed(1)} MB`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
