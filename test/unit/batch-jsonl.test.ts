// Batch input lines, completion windows and profiles.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { windowSeconds } from "../../gateway/batch/duration.ts";
import { checkJsonl, parseLine } from "../../gateway/batch/jsonl.ts";
import { resolveProfile } from "../../gateway/batch/profiles.ts";
import { withDefaults } from "../../gateway/batch/worker.ts";
import { configSchema } from "../../gateway/config/schema.ts";

const ok = { custom_id: "a", method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [] } };

describe("batch input lines", () => {
  it("a line over the byte cap is a problem with its number, read without holding it; the lines around it (CRLF too) are read as usual", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labgate-jsonl-cap-"));
    try {
      const path = join(dir, "in.jsonl");
      const line = (id: string) => JSON.stringify({ ...ok, custom_id: id });
      // 3 MB on line 2, far over a 1 KB cap; the file ends without a newline.
      writeFileSync(path, `${line("a")}\r\n${"x".repeat(3 * 1024 * 1024)}\n${line("b")}\r\n${line("c")}`);
      const seen: string[] = [];
      const report = await checkJsonl(path, { maxLines: 10, maxLineBytes: 1024, onLine: (l) => void seen.push(`${l.line}:${l.custom_id}`) });
      expect(report.lines).toBe(4);
      expect(report.problems).toEqual([{ line: 2, code: "line_too_long", message: "Line 2: the line is longer than 1 KB (batch.max_line_kb).", param: null }]);
      expect(seen).toEqual(["1:a", "3:b", "4:c"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("accepts a well-formed line and names the problem of a bad one, with its line number", () => {
    expect(parseLine(JSON.stringify(ok), 1)).toEqual({ line: 1, custom_id: "a", url: "/v1/chat/completions", body: ok.body });
    const cases: [unknown, string, string | null][] = [
      ["{", "invalid_json", null],
      [[1], "invalid_json_line", null],
      [{ ...ok, custom_id: "" }, "missing_required_parameter", "custom_id"],
      [{ ...ok, custom_id: "x".repeat(513) }, "invalid_value", "custom_id"],
      [{ ...ok, method: "GET" }, "invalid_value", "method"],
      [{ ...ok, url: "/v1/responses" }, "invalid_url", "url"],
      [{ ...ok, url: "/v1/chat/completions/../../admin" }, "invalid_url", "url"],
      [{ ...ok, body: null }, "invalid_value", "body"],
      [{ ...ok, body: { model: 3 } }, "invalid_value", "body.model"],
    ];
    for (const [value, code, param] of cases) {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      expect(parseLine(text, 7)).toMatchObject({ line: 7, code, param, message: expect.stringMatching(/^Line 7: /) });
    }
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { x: deep };
    expect(parseLine(JSON.stringify({ ...ok, body: deep }), 2)).toMatchObject({ code: "body_too_deep" });
  });

  it("reports duplicates, empty lines and too many lines; at most maxProblems of them, all counted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "labgate-jsonl-"));
    try {
      const file = join(dir, "in.jsonl");
      const line = (id: string) => JSON.stringify({ ...ok, custom_id: id });
      writeFileSync(file, [line("a"), line("a"), "", line("b"), line("a"), line("c")].join("\r\n") + "\r\n");
      const r = await checkJsonl(file, { maxLines: 100, maxProblems: 2 });
      expect(r.lines).toBe(6);
      expect(r.problemCount).toBe(3);
      expect(r.problems.map((p) => [p.line, p.code])).toEqual([
        [2, "duplicate_custom_id"],
        [3, "empty_line"],
      ]);
      const capped = await checkJsonl(file, { maxLines: 1 });
      expect(capped.problems.at(-1)).toMatchObject({ code: "too_many_requests", line: 2 });
      writeFileSync(file, "\uFEFF" + line("bom") + "\n");
      expect(await checkJsonl(file, { maxLines: 10 })).toEqual({ lines: 1, problems: [], problemCount: 0 });
      writeFileSync(file, "");
      expect((await checkJsonl(file, { maxLines: 10 })).problems).toEqual([expect.objectContaining({ code: "empty_file" })]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("completion windows and profiles", () => {
  it("reads durations; a profile's window replaces the request's, and it fills in model and max_tokens", () => {
    expect([windowSeconds("30s"), windowSeconds("15m"), windowSeconds("2h"), windowSeconds("24h"), windowSeconds("7d")]).toEqual([30, 900, 7200, 86400, 604800]);
    for (const bad of ["24", "0h", "1.5h", "h", "-1h", "24H", "1w"]) expect(windowSeconds(bad)).toBeUndefined();
    const config = configSchema.parse({ batch_profiles: { research: { model: "big", max_tokens: 100, completion_window: "2h", priority: 3 } } });
    const p = resolveProfile("research", config.batch_profiles, "24h");
    expect(p).toMatchObject({ name: "research", completionWindow: "2h", windowS: 7200, priority: 3, options: { model: "big", max_tokens: 100, concurrency: 4, retries: 2, redact_pii: false } });
    expect(resolveProfile(undefined, config.batch_profiles, "24h")).toMatchObject({ name: null, windowS: 86400 });
    expect(resolveProfile("toString", config.batch_profiles, "24h")).toEqual({ unknown: "toString" });
    if ("unknown" in p) throw new Error("unreachable");
    expect(withDefaults({ messages: [], stream: true }, "/v1/chat/completions", p.options)).toEqual({ messages: [], model: "big", max_tokens: 100 });
    expect(withDefaults({ model: "own", max_completion_tokens: 5 }, "/v1/chat/completions", p.options)).toEqual({ model: "own", max_completion_tokens: 5 });
    expect(withDefaults({ input: "x" }, "/v1/embeddings", p.options)).toEqual({ input: "x", model: "big" });
    expect(() => configSchema.parse({ batch_profiles: { x: { completion_window: "1 day" } } })).toThrow();
  });
});
