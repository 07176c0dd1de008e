// Checks a batch input file line by line, the way OpenAI's Batch API reads it: one JSON
// object per line with a unique custom_id, method POST, a supported url and an object
// body. The first problems are reported with their line numbers.
import { createReadStream } from "node:fs";
import { depthExceeds, MAX_BODY_DEPTH, MAX_MODEL_LENGTH } from "../api/body-limits.ts";
import type { Operation } from "../providers/types.ts";

/** The endpoints a batch may run, and the completion service's name for each. */
export const BATCH_ENDPOINTS: Readonly<Record<string, Operation>> = {
  "/v1/chat/completions": "chat",
  "/v1/completions": "completions",
  "/v1/embeddings": "embeddings",
};

/** Longest custom_id kept (OpenAI's limit is 512 characters too). */
export const MAX_CUSTOM_ID = 512;

export interface LineProblem {
  line: number;
  code: string;
  message: string;
  param: string | null;
}

export interface BatchLine {
  line: number;
  custom_id: string;
  url: string;
  body: Record<string, unknown>;
}

export interface JsonlReport {
  /** Lines read (the request count when there are no problems). */
  lines: number;
  /** The first `maxProblems` problems, in line order. */
  problems: LineProblem[];
  /** Every problem found, shown or not. */
  problemCount: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

const lineProblem = (line: number, code: string, message: string, param: string | null = null): LineProblem => ({ line, code, message: `Line ${line}: ${message}`, param });

/**
 * One JSONL line as a JSON object, or why it is not one: empty, not JSON, not an object,
 * nested too deep. A byte order mark on the first line is skipped. Shared by the input
 * check here and the reading of a cloud batch's result files (cloud-batch.ts).
 */
export function readObjectLine(text: string, line: number): LineProblem | { value: Record<string, unknown> } {
  const t = line === 1 && text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (t.trim() === "") return lineProblem(line, "empty_line", "the line is empty (one JSON object per line).");
  let value: unknown;
  try {
    value = JSON.parse(t);
  } catch {
    return lineProblem(line, "invalid_json", "the line is not valid JSON.");
  }
  if (!isObject(value)) return lineProblem(line, "invalid_json_line", "the line is not a JSON object.");
  if (depthExceeds(value, MAX_BODY_DEPTH + 1)) return lineProblem(line, "body_too_deep", `the request is nested more than ${MAX_BODY_DEPTH} levels deep.`, "body");
  return { value };
}

/** One line's problem, or the request it holds. */
export function parseLine(text: string, line: number): LineProblem | BatchLine {
  const problem = (code: string, message: string, param: string | null = null): LineProblem => lineProblem(line, code, message, param);
  const read = readObjectLine(text, line);
  if ("code" in read) return read;
  const { custom_id, method, url, body } = read.value;
  if (typeof custom_id !== "string" || custom_id === "") return problem("missing_required_parameter", "custom_id must be a non-empty string.", "custom_id");
  if (custom_id.length > MAX_CUSTOM_ID) return problem("invalid_value", `custom_id is longer than ${MAX_CUSTOM_ID} characters.`, "custom_id");
  if (method !== "POST") return problem("invalid_value", `method must be "POST".`, "method");
  if (typeof url !== "string" || !(url in BATCH_ENDPOINTS)) {
    return problem("invalid_url", `url must be one of ${Object.keys(BATCH_ENDPOINTS).join(", ")}.`, "url");
  }
  if (!isObject(body)) return problem("invalid_value", "body must be a JSON object.", "body");
  if (body.model !== undefined && (typeof body.model !== "string" || body.model === "" || body.model.length > MAX_MODEL_LENGTH)) {
    return problem("invalid_value", "body.model must be a model name.", "body.model");
  }
  return { line, custom_id, url, body };
}

/** Default longest line (bytes): one request with a long prompt fits; a runaway file does not fill the memory. */
export const DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024;

/** One line of a file, or the number of a line longer than the cap (its bytes were skipped, never held). */
type RawLine = { line: number; text: string } | { line: number; tooLong: true };

/**
 * The lines of a file, split on "\n" (a "\r" before it dropped) while streaming: at most
 * `maxLineBytes` of a line are ever held, so a file of one huge line cannot exhaust the
 * memory (readline keeps a whole line, whatever its size).
 */
export async function* readLines(path: string, maxLineBytes: number): AsyncGenerator<RawLine> {
  const input = createReadStream(path, { highWaterMark: 64 * 1024 });
  let parts: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  let line = 0;
  const finish = (): RawLine => {
    line++;
    if (tooLong) {
      parts = [];
      size = 0;
      tooLong = false;
      return { line, tooLong: true };
    }
    let buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
    if (buf.length > 0 && buf[buf.length - 1] === 0x0d) buf = buf.subarray(0, buf.length - 1);
    parts = [];
    size = 0;
    return { line, text: buf.toString("utf8") };
  };
  const add = (piece: Buffer): void => {
    if (tooLong || piece.length === 0) return;
    // +1: the "\r" of a CRLF line end may still come and is not the line's.
    if (size + piece.length > maxLineBytes + 1) {
      tooLong = true;
      parts = [];
      size = 0;
      return;
    }
    parts.push(piece);
    size += piece.length;
  };
  try {
    for await (const chunk of input as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl === -1) break;
        add(chunk.subarray(start, nl));
        yield finish();
        start = nl + 1;
      }
      // Copied: a slice would keep the whole 64 KiB chunk alive.
      if (start < chunk.length) add(Buffer.from(chunk.subarray(start)));
    }
    if (size > 0 || tooLong) yield finish();
  } finally {
    input.destroy();
  }
}

/**
 * Reads a JSONL file and checks every line; `onLine` sees each good one (awaited: the
 * caller may store it). Duplicate custom_ids are problems. Stops counting past `maxLines`
 * (one problem says so). A line longer than `maxLineBytes` is a problem with its number.
 */
export async function checkJsonl(
  path: string,
  opts: { maxProblems?: number; maxLines: number; maxLineBytes?: number; onLine?: (l: BatchLine) => void | Promise<void>; stop?: () => boolean },
): Promise<JsonlReport> {
  const maxProblems = opts.maxProblems ?? 10;
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const problems: LineProblem[] = [];
  let problemCount = 0;
  const note = (p: LineProblem): void => {
    problemCount++;
    if (problems.length < maxProblems) problems.push(p);
  };
  const seen = new Set<string>();
  let lines = 0;
  for await (const raw of readLines(path, maxLineBytes)) {
    if (opts.stop?.()) break;
    lines = raw.line;
    if (lines > opts.maxLines) {
      note({ line: lines, code: "too_many_requests", message: `The file has more than ${opts.maxLines} requests (batch.max_requests).`, param: null });
      break;
    }
    if ("tooLong" in raw) {
      note(lineProblem(lines, "line_too_long", `the line is longer than ${Math.round(maxLineBytes / 1024)} KB (batch.max_line_kb).`));
      continue;
    }
    // A byte order mark some editors write is not part of the first line's JSON.
    const text = lines === 1 && raw.text.startsWith("\uFEFF") ? raw.text.slice(1) : raw.text;
    const r = parseLine(text, lines);
    if ("code" in r) {
      note(r);
      continue;
    }
    if (seen.has(r.custom_id)) {
      note({ line: lines, code: "duplicate_custom_id", message: `Line ${lines}: custom_id "${clip(r.custom_id)}" is used by an earlier line; each must be unique.`, param: "custom_id" });
      continue;
    }
    seen.add(r.custom_id);
    await opts.onLine?.(r);
  }
  if (lines === 0) note({ line: 0, code: "empty_file", message: "The file has no requests.", param: null });
  return { lines, problems, problemCount };
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
