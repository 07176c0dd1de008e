// Broken upstream streams must not pass for success. Through a real gateway, with
// fake upstreams on loopback:
// - a stream that ends without its end marker (OpenAI's `data: [DONE]`, Anthropic's
//   message_stop, Ollama's `"done": true`) ends with an error event and an error row,
//   never with a [DONE] labgate wrote itself;
// - a 200 answer to a stream request that is not an event stream (an HTML page, half
//   a JSON body, nothing) fails before the first byte like a malformed JSON answer:
//   the next deployment answers, or the client gets a 502;
// - events in the SSE spec's other spellings (several data: lines, CRLF or CR line
//   ends, comments, a BOM) reach the client as valid SSE with the right text.
import { describe, expect, it } from "vitest";
import { startFakeAnthropic, type FakeAnthropic } from "../fixtures/fake-anthropic.ts";
import { replies, startFakeOllama, type FakeOllama } from "../fixtures/fake-ollama.ts";
import type { Fault } from "../fixtures/fake-openai.ts";
import { useLab } from "../fixtures/lab.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import type { RequestLogRow } from "../../gateway/store/request-log.ts";

const lab = useLab({ env: { ANTHROPIC_API_KEY: "sk-ant-test-key-0123456789" } });
const calm = { consecutive_failures: 1000, min_requests: 1000 };

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** For a stream: each event's payload, parsed ("[DONE]" kept as a string). */
  events: unknown[];
  json: Record<string, any> | undefined;
}

/**
 * Posts a chat request and reads the answer as a strict SSE client would: every
 * block of a stream must be `data: <one JSON value or [DONE]>` or a comment.
 */
async function chat(gw: TestGateway, model: string, stream: boolean, extra: Record<string, unknown> = {}): Promise<Answer> {
  const res = await fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi there" }], stream, ...extra }),
  });
  const text = await res.text();
  const events: unknown[] = [];
  let json: Record<string, any> | undefined;
  if ((res.headers.get("content-type") ?? "").includes("text/event-stream")) {
    expect(text.endsWith("\n\n"), "a stream ends with a blank line").toBe(true);
    for (const block of text.slice(0, -2).split("\n\n")) {
      const lines = block.split("\n").filter((l) => !l.startsWith(":"));
      if (lines.length === 0) continue;
      expect(lines, `one data: line per event: ${JSON.stringify(block)}`).toHaveLength(1);
      expect(lines[0]!.startsWith("data: ")).toBe(true);
      const data = lines[0]!.slice(6);
      events.push(data === "[DONE]" ? data : JSON.parse(data));
    }
  } else {
    json = JSON.parse(text) as Record<string, any>;
  }
  return { status: res.status, headers: res.headers, text, events, json };
}

function contentOf(a: Answer): string {
  return a.events
    .filter((e): e is Record<string, any> => typeof e === "object" && e !== null && Array.isArray((e as any).choices))
    .map((e) => e.choices[0]?.delta?.content ?? "")
    .join("");
}

function errorEvent(a: Answer): Record<string, any> | undefined {
  return a.events.find((e): e is Record<string, any> => typeof e === "object" && e !== null && "error" in e) as Record<string, any> | undefined;
}

function row(gw: TestGateway, a: Answer): RequestLogRow {
  gw.gateway.requestLog.flush();
  const r = gw.gateway.requestLog.get(a.headers.get("x-request-id") ?? "");
  expect(r, "the request's log row").toBeDefined();
  return r!;
}

/** One model group per case: `solo` (only the faulty deployment) and `pair` (faulty first, then a good one). */
async function openAILab(): Promise<{ gw: TestGateway; bad: Awaited<ReturnType<typeof lab.fake>>; good: Awaited<ReturnType<typeof lab.fake>> }> {
  const bad = await lab.fake({ name: "bad", reply: ["one", " two", " three", " four"] });
  const good = await lab.fake({ name: "good", reply: ["good", " answer"] });
  const gw = await lab.gateway({
    providers: {
      bad: { type: "openai-compatible", base_url: bad.v1 },
      good: { type: "openai-compatible", base_url: good.v1 },
    },
    models: {
      solo: { deployments: [{ provider: "bad", model: "b" }] },
      pair: { strategy: "priority", deployments: [{ provider: "bad", model: "b" }, { provider: "good", model: "g" }] },
    },
    router: { retries: 0, circuit_breaker: calm },
  });
  return { gw, bad, good };
}

const HTML = "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n";
const HALF_JSON = '{"id":"chatcmpl-1","object":"chat.completion","created":1795390227,"choices":[{"index":0,"message":{"role":"assistant","content":"Hel';

describe("an OpenAI-compatible stream cut short", () => {
  it("ends with an error event after the chunks it had, no [DONE]; the row is an error (reset)", async () => {
    const { gw, bad } = await openAILab();
    bad.faultNext({ kind: "truncated_stream", afterChunks: 2 });
    const a = await chat(gw, "solo", true);
    expect(a.status).toBe(200); // the answer had started
    expect(contentOf(a)).toBe("one two");
    expect(a.events).not.toContain("[DONE]");
    expect(errorEvent(a)?.error).toMatchObject({ code: "reset" });
    expect(errorEvent(a)?.error.message).toMatch(/cut short/);
    const r = row(gw, a);
    expect(r.status).not.toBe(200);
    expect(r.error_class).toBe("reset");
  });

  it("a stream whose answer finished (finish_reason) but that closed without [DONE] is complete", async () => {
    const { gw, bad } = await openAILab();
    const chunk = (delta: object, finish: string | null) =>
      `data: ${JSON.stringify({ id: "x", object: "chat.completion.chunk", created: 1, model: "b", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    bad.faultNext({ kind: "raw", contentType: "text/event-stream", body: chunk({ role: "assistant", content: "" }, null) + chunk({ content: "all here" }, null) + chunk({}, "stop") });
    const a = await chat(gw, "solo", true);
    expect(contentOf(a)).toBe("all here");
    expect(a.events.at(-1)).toBe("[DONE]");
    expect(errorEvent(a)).toBeUndefined();
    expect(row(gw, a)).toMatchObject({ status: 200, error_class: null });
  });

  it("a complete stream is unchanged: 200, [DONE], a 200 row", async () => {
    const { gw } = await openAILab();
    const a = await chat(gw, "solo", true);
    expect(contentOf(a)).toBe("one two three four");
    expect(a.events.at(-1)).toBe("[DONE]");
    expect(row(gw, a)).toMatchObject({ status: 200, error_class: null });
  });
});

describe("a 200 answer to a stream request that is not an event stream", () => {
  const cases: { name: string; fault: Fault }[] = [
    { name: "an HTML page", fault: { kind: "raw", contentType: "text/html", body: HTML } },
    { name: "half a JSON body", fault: { kind: "raw", contentType: "application/json", body: HALF_JSON } },
    { name: "half a JSON body labelled text/event-stream", fault: { kind: "raw", contentType: "text/event-stream", body: HALF_JSON } },
    { name: "an empty body", fault: { kind: "raw", contentType: "text/event-stream", body: "" } },
  ];
  for (const c of cases) {
    it(`${c.name}: the next deployment answers; alone, the client gets a 502 and a malformed row`, async () => {
      const { gw, bad, good } = await openAILab();
      bad.faultNext(c.fault);
      const a = await chat(gw, "pair", true);
      expect(a.status).toBe(200);
      expect(contentOf(a)).toBe("good answer");
      expect(a.headers.get("x-routed-provider")).toBe("good");
      const r = row(gw, a);
      expect(r.status).toBe(200);
      expect(r.attempts.map((x) => [x.provider, x.error_class])).toEqual([
        ["bad", "malformed"],
        ["good", null],
      ]);
      expect(good.hits()).toBe(1);

      bad.faultNext(c.fault);
      const alone = await chat(gw, "solo", true);
      expect(alone.status).toBe(502);
      expect(alone.json?.error).toBeDefined(); // a JSON error, not an empty 200 stream
      expect(row(gw, alone)).toMatchObject({ status: 502, error_class: "malformed" });
    });
  }
});

describe("the SSE spec's other spellings reach the client as valid SSE", () => {
  const variants: { name: string; fault: Fault }[] = [
    { name: "each event's JSON over several data: lines", fault: { kind: "sse_variants", multiline: true } },
    { name: "CRLF line ends, comments and event: fields", fault: { kind: "sse_variants", lineEnd: "\r\n", comments: true } },
    { name: "CR line ends, several data: lines and a leading BOM", fault: { kind: "sse_variants", lineEnd: "\r", multiline: true, bom: true } },
  ];
  for (const v of variants) {
    it(`${v.name}: the whole answer, one data: line per event, usage counted`, async () => {
      const { gw, bad } = await openAILab();
      bad.faultNext(v.fault);
      const a = await chat(gw, "solo", true, { stream_options: { include_usage: true } });
      expect(a.status).toBe(200);
      expect(contentOf(a)).toBe("one two three four");
      expect(a.events.at(-1)).toBe("[DONE]");
      const usage = a.events.find((e): e is Record<string, any> => typeof e === "object" && e !== null && (e as any).usage);
      expect(usage?.usage).toMatchObject({ completion_tokens: 4 });
      expect(row(gw, a)).toMatchObject({ status: 200, error_class: null, completion_tokens: 4 });
    });
  }
});

describe("Anthropic and Ollama streams follow the same rule", () => {
  async function anthropicLab(): Promise<{ gw: TestGateway; up: FakeAnthropic }> {
    const up = await startFakeAnthropic();
    const gw = await lab.gateway({
      providers: { claude: { type: "anthropic", base_url: up.url, api_key: "env:ANTHROPIC_API_KEY" } },
      models: { claude: { deployments: [{ provider: "claude", model: "claude-test" }] } },
      router: { retries: 0, circuit_breaker: calm },
    });
    return { gw, up };
  }

  it("Anthropic: a stream that ends cleanly before message_stop ends with an error event and a reset row", async () => {
    const { gw, up } = await anthropicLab();
    try {
      const full = up.renderStream();
      // Everything up to the stop reason (message_delta) arrives; message_stop never does.
      up.rawStream = full.slice(0, full.indexOf("event: message_stop"));
      expect(up.rawStream).toContain("message_delta");
      const a = await chat(gw, "claude", true);
      expect(a.status).toBe(200);
      expect(contentOf(a).length).toBeGreaterThan(0);
      expect(a.events).not.toContain("[DONE]");
      expect(errorEvent(a)?.error).toMatchObject({ code: "reset" });
      expect(row(gw, a)).toMatchObject({ error_class: "reset" });
    } finally {
      await up.close();
    }
  });

  it("Anthropic: a 200 HTML page for a stream fails before the first byte (502, malformed)", async () => {
    const { gw, up } = await anthropicLab();
    try {
      up.rawStream = HTML;
      const a = await chat(gw, "claude", true);
      expect(a.status).toBe(502);
      expect(row(gw, a)).toMatchObject({ status: 502, error_class: "malformed" });
    } finally {
      await up.close();
    }
  });

  it("Ollama: a stream that ends cleanly without its done line ends with an error event and a reset row", async () => {
    const up: FakeOllama = await startFakeOllama();
    try {
      const gw = await lab.gateway({
        providers: { ollama: { type: "ollama", base_url: up.url } },
        models: { llama: { deployments: [{ provider: "ollama", model: "llama3.2" }] } },
        router: { retries: 0, circuit_breaker: calm },
      });
      up.enqueue("chat", replies.truncated("ollama-chat-stream.ndjson"));
      const a = await chat(gw, "llama", true);
      expect(a.status).toBe(200);
      expect(a.events).not.toContain("[DONE]");
      expect(errorEvent(a)?.error).toMatchObject({ code: "reset" });
      expect(row(gw, a)).toMatchObject({ error_class: "reset" });
    } finally {
      await up.close();
    }
  });
});
