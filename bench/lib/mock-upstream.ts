// A minimal, fast OpenAI-compatible upstream for the benchmark. Every answer is
// precomputed bytes written in one go, with no artificial delay, so the mock is
// never the bottleneck. The shapes follow llama-server (role chunk with
// content:null, finish chunk with delta:{}, usage chunk with choices:[],
// `data: [DONE]`), so labgate's real parsers do their real work.
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

const CREATED = 1795390227;
const ID = "chatcmpl-benchmockbenchmockbenchmock0001";
const MODEL = "mock-model";
const FINGERPRINT = "b0-unknown";

/** The words of the answer; each becomes one stream chunk. */
export const ANSWER_WORDS = ["Hello", " from", " the", " fast", " mock", " upstream."];
/** The full answer text a correct gateway must deliver (JSON content, or the joined stream deltas). */
export const ANSWER_TEXT = ANSWER_WORDS.join("");
const USAGE = { completion_tokens: ANSWER_WORDS.length, prompt_tokens: 12, total_tokens: ANSWER_WORDS.length + 12 };

function jsonAnswer(): Buffer {
  return Buffer.from(
    JSON.stringify({
      choices: [{ finish_reason: "stop", index: 0, message: { role: "assistant", content: ANSWER_TEXT } }],
      created: CREATED,
      model: MODEL,
      system_fingerprint: FINGERPRINT,
      object: "chat.completion",
      usage: USAGE,
      id: ID,
      timings: { prompt_n: 12, prompt_ms: 1.5, predicted_n: ANSWER_WORDS.length, predicted_ms: 2.5 },
    }),
  );
}

/** Role chunk + one chunk per word + finish chunk (8 chunks), then the usage chunk and [DONE]. */
function sseAnswer(): Buffer {
  const chunk = (delta: Record<string, unknown>, finish: string | null): unknown => ({
    choices: [{ finish_reason: finish, index: 0, delta }],
    created: CREATED,
    id: ID,
    model: MODEL,
    system_fingerprint: FINGERPRINT,
    object: "chat.completion.chunk",
  });
  const events: unknown[] = [chunk({ role: "assistant", content: null }, null)];
  for (const w of ANSWER_WORDS) events.push(chunk({ content: w }, null));
  events.push(chunk({}, "stop"));
  events.push({ choices: [], created: CREATED, id: ID, model: MODEL, system_fingerprint: FINGERPRINT, object: "chat.completion.chunk", usage: USAGE });
  return Buffer.from(events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n");
}

const JSON_BODY = jsonAnswer();
const SSE_BODY = sseAnswer();
const JSON_HEADERS: OutgoingHttpHeaders = { "content-type": "application/json; charset=utf-8", "content-length": JSON_BODY.length };
// Like llama-server: chunked, no content-length.
const SSE_HEADERS: OutgoingHttpHeaders = { "content-type": "text/event-stream", "x-accel-buffering": "no" };
const MODELS_BODY = Buffer.from(JSON.stringify({ object: "list", data: [{ id: MODEL, object: "model", created: CREATED, owned_by: "llamacpp" }] }));
const HEALTH_BODY = Buffer.from('{"status":"ok"}');
const STREAM_MARK = Buffer.from('"stream":true');

function small(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": body.length });
  res.end(body);
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== "POST") {
    req.resume();
    if (req.url === "/v1/models") return small(res, 200, MODELS_BODY);
    if (req.url === "/health" || req.url === "/v1/health") return small(res, 200, HEALTH_BODY);
    return small(res, 404, Buffer.from('{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}'));
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    // Every client in the bench sends compact JSON (JSON.stringify), so a byte search is enough.
    if (body.includes(STREAM_MARK)) {
      res.writeHead(200, SSE_HEADERS);
      res.end(SSE_BODY);
    } else {
      res.writeHead(200, JSON_HEADERS);
      res.end(JSON_BODY);
    }
  });
}

export interface MockUpstream {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export async function startMockUpstream(port = 0): Promise<MockUpstream> {
  const server = createServer({ keepAliveTimeout: 60_000, requestTimeout: 0 }, onRequest);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  const { port: p } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${p}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
