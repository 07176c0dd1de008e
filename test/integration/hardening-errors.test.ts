// Every error labgate sends is in OpenAI's shape (issue #9, item 10), including the ones
// Node's HTTP parser, its request/header timeouts and fastify's router produce before any
// route runs; and slow clients do not hold sockets forever (item 8). Requests go over raw
// sockets to 127.0.0.1, byte for byte, since no HTTP client writes most of them.
import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";
import { expectOpenAIError, rawExchange } from "../fixtures/raw-http.ts";

const lab = useLab();

interface Case {
  name: string;
  bytes: string | Buffer;
  /** The status expected; a list when Node's parser may answer either way. */
  status: number | number[];
  code?: string;
}

const chat = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] });
const H = "Host: 127.0.0.1\r\n";
const post = (path: string, headers: string, body: string) => `POST ${path} HTTP/1.1\r\n${H}${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

const cases: Case[] = [
  // fastify's router and handlers
  { name: "unknown route", bytes: `GET /nope HTTP/1.1\r\n${H}\r\n`, status: 404, code: "unknown_url" },
  { name: "wrong method on a route", bytes: `GET /v1/chat/completions HTTP/1.1\r\n${H}\r\n`, status: 404 },
  { name: "DELETE on /v1/models", bytes: `DELETE /v1/models HTTP/1.1\r\n${H}\r\n`, status: 404 },
  { name: "absolute-form target naming another host", bytes: `GET http://evil.example/v1/models HTTP/1.1\r\n${H}\r\n`, status: 403, code: "host_not_allowed" },
  { name: "absolute-form target without a path", bytes: `GET http://evil.example HTTP/1.1\r\n${H}\r\n`, status: [403, 404] },
  { name: "asterisk target", bytes: `GET * HTTP/1.1\r\n${H}\r\n`, status: [400, 404] },
  { name: "bad percent-encoding in the path", bytes: `GET /v1/models/%E0%A4%A HTTP/1.1\r\n${H}\r\n`, status: 400, code: "invalid_url" },
  { name: "a lone % in the path", bytes: `GET /%zz HTTP/1.1\r\n${H}\r\n`, status: 400, code: "invalid_url" },
  { name: "a path parameter past fastify's limit", bytes: `POST /admin/providers/${"p".repeat(300)}/disable HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, status: 414, code: "url_too_long" },
  // bodies
  { name: "invalid JSON", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", "{nope"), status: 400, code: "invalid_json" },
  { name: "truncated JSON", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", chat.slice(0, 20)), status: 400 },
  { name: "empty JSON body", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", ""), status: 400 },
  { name: "JSON null", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", "null"), status: 400 },
  { name: "JSON array", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", "[1,2]"), status: 400 },
  { name: "missing model", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", '{"messages":[]}'), status: 400 },
  { name: "__proto__ in the body", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", '{"__proto__":{"x":1},"model":"m","messages":[]}'), status: 400 },
  { name: "text/plain body (fastify parses it as a string: not an object)", bytes: post("/v1/chat/completions", "Content-Type: text/plain\r\n", chat), status: 400 },
  { name: "XML body", bytes: post("/v1/chat/completions", "Content-Type: application/xml\r\n", "<a/>"), status: 415 },
  { name: "form body", bytes: post("/v1/embeddings", "Content-Type: application/x-www-form-urlencoded\r\n", "a=b"), status: 415 },
  { name: "body over body_limit_mb", bytes: post("/v1/chat/completions", "Content-Type: application/json\r\n", JSON.stringify({ model: "m", pad: "x".repeat(3000) })), status: 413 },
  { name: "Content-Length over the limit, no body sent", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n`, status: 413 },
  {
    name: "chunked body that is not JSON",
    bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    status: 400,
  },
  // Host
  { name: "no Host", bytes: "GET /v1/models HTTP/1.1\r\n\r\n", status: 403, code: "host_not_allowed" },
  { name: "HTTP/1.0 without Host", bytes: "GET /v1/models HTTP/1.0\r\n\r\n", status: 403, code: "host_not_allowed" },
  { name: "foreign Host", bytes: "GET /v1/models HTTP/1.1\r\nHost: evil.example\r\n\r\n", status: 403, code: "host_not_allowed" },
  // Node's HTTP parser
  { name: "URL over 16 KB", bytes: `GET /${"a".repeat(20000)} HTTP/1.1\r\n${H}\r\n`, status: 414, code: "url_too_long" },
  { name: "headers over 16 KB", bytes: `GET /v1/models HTTP/1.1\r\n${H}X-Big: ${"b".repeat(20000)}\r\n\r\n`, status: 431, code: "headers_too_large" },
  { name: "many headers over 16 KB", bytes: `GET /v1/models HTTP/1.1\r\n${H}${Array.from({ length: 600 }, (_, i) => `X-H${i}: ${"v".repeat(30)}\r\n`).join("")}\r\n`, status: 431 },
  { name: "unknown method", bytes: `FOO / HTTP/1.1\r\n${H}\r\n`, status: 400, code: "invalid_http_request" },
  { name: "lower-case method", bytes: `get / HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "TLS hello on the plain port", bytes: Buffer.from("16030100a5010000a10303000102030405060708090a0b0c0d0e0f", "hex"), status: 400 },
  { name: "HTTP/2 preface", bytes: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 400 },
  { name: "HTTP/3.0 version", bytes: `GET / HTTP/3.0\r\n${H}\r\n`, status: [400, 505] },
  { name: "garbage request line", bytes: "hello there\r\n\r\n", status: 400 },
  { name: "NUL in the URL", bytes: `GET /v1/mo\0dels HTTP/1.1\r\n${H}\r\n`, status: 400 },
  { name: "space in a header name", bytes: `GET /v1/models HTTP/1.1\r\n${H}Bad Header: x\r\n\r\n`, status: 400 },
  { name: "control character in a header value", bytes: `GET /v1/models HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, status: 400 },
  { name: "obsolete line folding", bytes: `GET /v1/models HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n\r\n`, status: 400 },
  { name: "Content-Length and Transfer-Encoding", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: "two different Content-Lengths", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd`, status: 400 },
  { name: "Content-Length not a number", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, status: 400 },
  { name: "negative Content-Length", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, status: 400 },
  { name: "bad chunk size", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: "unknown Transfer-Encoding", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, status: [400, 501] },
  { name: "chunk extensions over the limit", bytes: `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1;${"e".repeat(20000)}\r\na\r\n0\r\n\r\n`, status: [400, 413] },
  { name: "Expect other than 100-continue", bytes: `GET /v1/models HTTP/1.1\r\n${H}Expect: the-unexpected\r\n\r\n`, status: 417, code: "expectation_failed" },
  { name: "CONNECT", bytes: `CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n`, status: 405, code: "method_not_allowed" },
];

describe("malformed requests over raw sockets", () => {
  it(`${cases.length} malformed requests: each gets its status and an OpenAI-shaped JSON body, never fastify's or Node's own`, async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway({
      server: { body_limit_mb: 0.002 },
      providers: { lab: { type: "llamacpp", base_url: up.url } },
      models: { m: { deployments: [{ provider: "lab", model: "x" }] } },
    });
    const port = Number(new URL(gw.url).port);
    const seen: string[] = [];
    for (const c of cases) {
      const r = await rawExchange(port, c.bytes);
      const expected = Array.isArray(c.status) ? c.status : [c.status];
      seen.push(`${c.name}: ${r.status}`);
      expect(expected, `${c.name}: got ${r.status} ${r.body.slice(0, 200)}`).toContain(r.status);
      expect(r.headers["content-type"], c.name).toMatch(/^application\/json/);
      const e = expectOpenAIError(r.body, c.code);
      expect(e.type, c.name).toMatch(/^(invalid_request_error|permission_error|authentication_error|not_found_error|api_error)$/);
      // Nothing of fastify's own shape leaks through.
      expect(r.body, c.name).not.toMatch(/"statusCode"|"FST_ERR/);
    }
    expect(seen).toHaveLength(cases.length);
    // None of it reached the upstream, and the gateway still answers.
    expect(up.hits()).toBe(0);
    const ok = await rawExchange(port, `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: ${chat.length}\r\nConnection: close\r\n\r\n${chat}`);
    expect(ok.status).toBe(200);
  });

  it("while shutting down, new requests get a 503 in OpenAI's shape", async () => {
    const up = await lab.fake({ name: "up", reply: ["a", "b", "c", "d"], chunkDelayMs: 200 });
    const gw = await lab.gateway({
      server: { shutdown_grace_s: 30 },
      providers: { lab: { type: "llamacpp", base_url: up.url } },
      models: { m: { deployments: [{ provider: "lab", model: "x" }] } },
    });
    const port = Number(new URL(gw.url).port);
    // A keep-alive connection with a stream in flight keeps the server open while it closes.
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((r) => socket.on("connect", () => r()));
    const body = JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] });
    let received = "";
    socket.on("data", (d: Buffer) => (received += d.toString()));
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await expect.poll(() => up.hits(), { timeout: 5000 }).toBe(1);
    const socketClosed = new Promise<void>((r) => socket.on("close", () => r()));
    const closing = gw.gateway.close();
    // The next request on that same connection (pipelined behind the stream).
    socket.write(`GET /v1/models HTTP/1.1\r\n${H}\r\n`);
    await closing;
    // The gateway closes the connection itself once both answers are out.
    await socketClosed;
    expect(received).toContain("data: [DONE]");
    const second = received.slice(received.indexOf("HTTP/1.1", 10));
    expect(second).toMatch(/^HTTP\/1\.1 503/);
    const json = second.slice(second.indexOf("\r\n\r\n") + 4);
    expectOpenAIError(json.slice(0, json.lastIndexOf("}") + 1), "shutting_down");
  });
});

describe("slow clients", () => {
  const start = async (server: Record<string, unknown>) => {
    const up = await lab.fake({ name: "up", reply: Array.from({ length: 8 }, (_, i) => `w${i}`), chunkDelayMs: 150 });
    const gw = await lab.gateway({
      server,
      providers: { lab: { type: "llamacpp", base_url: up.url } },
      models: { m: { deployments: [{ provider: "lab", model: "x" }] } },
    });
    return { gw, up, port: Number(new URL(gw.url).port) };
  };

  it("a client that sends headers and then part of its body is answered 408 and disconnected (server.request_timeout_s)", async () => {
    const { gw, up, port } = await start({ request_timeout_s: 0.5, headers_timeout_s: 0.3 });
    const r = await rawExchange(port, `POST /v1/chat/completions HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"model":"m",`);
    expect(r.status).toBe(408);
    expectOpenAIError(r.body, "request_timeout");
    expect(up.hits()).toBe(0);
    gw.gateway.requestLog.flush();
    expect(gw.gateway.requestLog.recent(5)).toHaveLength(0);
  });

  it("a client that never finishes its headers, or sends nothing, is answered 408 and disconnected (server.headers_timeout_s)", async () => {
    const { port } = await start({ request_timeout_s: 30, headers_timeout_s: 0.3 });
    for (const bytes of [`GET /v1/models HTTP/1.1\r\n${H}X-Slow: `, "G", ""]) {
      const r = await rawExchange(port, bytes);
      expect(r.status).toBe(408);
      expectOpenAIError(r.body, "request_timeout");
    }
  });

  it("the request timeout bounds receiving the request, not the answer: a stream longer than it is delivered whole", async () => {
    const { gw, up } = await start({ request_timeout_s: 0.3, headers_timeout_s: 0.2 });
    const res = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    // 8 chunks 150 ms apart: the stream outlasted the 0.3 s request timeout several times over.
    for (let i = 0; i < 8; i++) expect(text).toContain(`"w${i}"`);
    expect(text.trim().endsWith("data: [DONE]")).toBe(true);
    expect(up.hits()).toBe(1);
  });
});
