// Loading labgate.yaml: YAML syntax, the schema, and the cross-field checks, each
// problem reported with its file, line and path so `labgate validate` can point at it.
import { readFile } from "node:fs/promises";
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { core } from "zod";
import { configSchema, type LabgateConfig } from "./schema.ts";
import { checkReferences } from "./references.ts";

export interface LocatedProblem {
  file: string;
  line: number;
  column: number;
  /** Dotted path into the document, e.g. models.gpt-4-turbo.deployments[0].provider */
  path: string;
  message: string;
}

export type LoadResult = { ok: true; config: LabgateConfig } | { ok: false; problems: LocatedProblem[] };

export class ConfigError extends Error {
  readonly problems: LocatedProblem[];
  constructor(problems: LocatedProblem[]) {
    super(problems.map(formatProblem).join("\n"));
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export function formatProblem(p: LocatedProblem): string {
  return `${p.file}:${p.line}:${p.column}: ${p.path ? p.path + ": " : ""}${p.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else out += (out ? "." : "") + String(seg);
  }
  return out;
}

export async function loadConfigFile(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, problems: [{ file, line: 0, column: 0, path: "", message: `cannot read config (${code ?? String(err)})` }] };
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file = "<config>"): LoadResult {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { file, line: pos.line, column: pos.col, path: "", message: `YAML: ${e.message.split("\n")[0]}` };
      }),
    };
  }
  const raw = doc.toJS() ?? {};
  const locate = (path: readonly PropertyKey[]): { line: number; column: number } => {
    const offset = offsetOf(doc, path);
    if (offset === undefined) return { line: 1, column: 1 };
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  const parsed = configSchema.safeParse(raw, { reportInput: true });
  const schemaProblems = parsed.success ? [] : parsed.error.issues.flatMap((issue) => issueToProblems(issue, file, locate));
  // Cross-field checks run even when the schema failed, so one run shows every problem.
  const refProblems = checkReferences(parsed.success ? parsed.data : (raw as LabgateConfig)).map((p) => ({
    file,
    ...locate(p.path),
    path: formatPath(p.path),
    message: p.message,
  }));
  const problems = [...schemaProblems, ...refProblems.filter((r) => !schemaProblems.some((s) => s.path === r.path))];
  if (problems.length > 0 || !parsed.success) return { ok: false, problems: sortProblems(problems) };
  return { ok: true, config: parsed.data };
}

function issueToProblems(
  issue: core.$ZodIssue,
  file: string,
  locate: (path: readonly PropertyKey[]) => { line: number; column: number },
): LocatedProblem[] {
  const path = issue.path as PropertyKey[];
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({
      file,
      ...locate([...path, key]),
      path: formatPath([...path, key]),
      message: `unknown field "${key}"`,
    }));
  }
  let message = issue.message;
  if (issue.code === "invalid_type") {
    message = issue.input === undefined ? `required field is missing (expected ${issue.expected})` : `expected ${issue.expected}`;
  } else if (issue.code === "invalid_value" && "values" in issue) {
    message = `must be one of: ${issue.values.map(String).join(", ")}`;
  }
  return [{ file, ...locate(path), path: formatPath(path), message }];
}

function sortProblems(problems: LocatedProblem[]): LocatedProblem[] {
  return problems.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Source offset of the deepest node on `path` (the key's position when the path ends at a map key). */
function offsetOf(doc: Document, path: readonly PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let best: number | undefined = (node as Node | null)?.range?.[0];
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      best = (pair.key as Node).range?.[0] ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === "number") {
      const item = node.items[seg] as Node | undefined;
      if (!item) return best;
      best = item.range?.[0] ?? best;
      node = item;
    } else {
      return best;
    }
  }
  return best;
}
