// The Redactor: what an upstream's error text may still say once a client sees it.
import { describe, expect, it } from "vitest";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import { Redactor } from "../../gateway/providers/redact.ts";

describe("Redactor", () => {
  it("replaces every configured secret, also JSON-escaped and URL-encoded, longest first", () => {
    const r = new Redactor({ secrets: ["abc/def+\"ghi", "short", "x", undefined, ""] });
    r.add("short-and-longer");
    expect(r.redact('key abc/def+"ghi and abc/def+\\"ghi and abc%2Fdef%2B%22ghi')).toBe("key [REDACTED] and [REDACTED] and [REDACTED]");
    expect(r.redact("short-and-longer / short")).toBe("[REDACTED] / [REDACTED]");
    expect(r.redact("x marks the spot")).toBe("x marks the spot"); // too short to search for
  });

  it("replaces bearer tokens, sk- keys, echoed auth headers and other key shapes without any configuration", () => {
    const r = new Redactor();
    expect(r.redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz")).toBe("Authorization: [REDACTED]");
    expect(r.redact('{"authorization":"Bearer abc.def.ghi"}')).toBe('{"authorization":"[REDACTED]"}');
    expect(r.redact("got bearer 0123456789abcdefABCDEF")).toBe("got bearer [REDACTED]");
    expect(r.redact("key sk-proj-AbC123_xyz-456 is wrong")).toBe("key [REDACTED] is wrong");
    expect(r.redact("x-api-key: sk-ant-api03-zzz")).toBe("x-api-key: [REDACTED]");
    expect(r.redact("hf_abcdefghijklmnopqrstuvwx AKIAABCDEFGHIJKLMNOP")).toBe("[REDACTED] [REDACTED]");
  });

  it("leaves ordinary messages alone", () => {
    const r = new Redactor();
    for (const m of [
      "at least one message is required",
      "invalid token provided",
      "Bearer authentication required",
      "POST /v1/chat/completions: model `llama3` not found, try pulling it first",
      "the request exceeds the available context size (5000 > 4096), try increasing it",
    ]) {
      expect(r.clean(m)).toBe(m);
    }
  });

  it("drops stack lines (JavaScript, Python, Go) and absolute paths, collapses whitespace, bounds the length", () => {
    const r = new Redactor({ maxLength: 120 });
    const js = "Error: boom\n    at handler (/srv/app/server.js:10:5)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)\n    at <anonymous>";
    expect(r.clean(js)).toBe("Error: boom");
    const py = 'Traceback (most recent call last):\n  File "/opt/vllm/entrypoints/api.py", line 12, in create\nValueError: bad   input';
    expect(r.clean(py)).toBe("ValueError: bad input");
    expect(r.clean("cannot open /home/alice/models/llama.gguf: no such file")).toBe("cannot open [path]: no such file");
    expect(r.clean("failed at C:\\Users\\alice\\models\\x.gguf today")).toBe("failed at [path] today");
    expect(r.clean("see file:///etc/passwd")).toBe("see [path]");
    expect(r.clean("http://host:8080/v1/models stays")).toBe("http://host:8080/v1/models stays");
    const long = r.clean("word ".repeat(100));
    expect(long.length).toBe(120);
    expect(long.endsWith("…")).toBe(true);
  });

  it("error(): same class, status and Retry-After with a clean message; the full text (redacted) goes to onFullText", () => {
    const seen: string[] = [];
    const r = new Redactor({ secrets: ["topsecretvalue"], onFullText: (t) => seen.push(t) });
    const err = new UpstreamError("auth", "upstream answered 401: key topsecretvalue is wrong\n    at f (/x/y.js:1:2)", { upstreamStatus: 401, retryAfterMs: 5 });
    const out = r.error(err, "cloud");
    expect(out).toBeInstanceOf(UpstreamError);
    expect(out).toMatchObject({ errorClass: "auth", upstreamStatus: 401, retryAfterMs: 5, message: "upstream answered 401: key [REDACTED] is wrong" });
    expect(out.cause).toBeUndefined();
    expect(seen).toEqual(["upstream answered 401: key [REDACTED] is wrong\n    at f (/x/y.js:1:2)"]);
    const clean = new UpstreamError("reset", "upstream connection reset");
    expect(r.error(clean)).toBe(clean);
  });

  it("each gateway has its own: secrets added to one are not redacted by another", () => {
    const a = new Redactor({ secrets: ["secret-of-a"] });
    const b = new Redactor();
    expect(a.redact("secret-of-a")).toBe("[REDACTED]");
    expect(b.redact("secret-of-a")).toBe("secret-of-a");
  });
});
