// HTTP plumbing shared by the adapters that speak HTTP through undici:
// one keep-alive connection pool per provider, and upstream errors turned into UpstreamError.
import { Agent, type Dispatcher } from "undici";
import { exchange, type UpstreamResponse } from "./exchange.ts";
import { UpstreamError, classifyHttpError, fromNetworkError, parseRetryAfter } from "./errors.ts";

export function createAgent(): Agent {
  return new Agent({
    connections: 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: 10_000 },
    headersTimeout: 0, // the router's attempt timeout governs this
    bodyTimeout: 0,
  });
}

export interface JsonCall {
  url: string;
  method?: "GET" | "POST";
  headers?: Record<string, string>;
  body?: unknown;
  signal: AbortSignal;
  dispatcher: Dispatcher;
}

/** Sends a request and returns the response if 2xx; throws an UpstreamError otherwise. */
export async function send(call: JsonCall): Promise<UpstreamResponse> {
  let res: UpstreamResponse;
  try {
    res = await exchange({
      url: call.url,
      method: call.method ?? "POST",
      headers: call.body === undefined ? call.headers : { "content-type": "application/json", ...call.headers },
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      signal: call.signal,
      dispatcher: call.dispatcher,
    });
  } catch (err) {
    throw fromNetworkError(err, call.signal);
  }
  if (res.statusCode >= 200 && res.statusCode < 300) return res;
  let text = "";
  try {
    text = await res.body.text();
  } catch {
    // the body is only for the message
  }
  const message = upstreamErrorMessage(text) || `HTTP ${res.statusCode}`;
  throw new UpstreamError(classifyHttpError(res.statusCode, message), `upstream answered ${res.statusCode}: ${message}`, {
    upstreamStatus: res.statusCode,
    retryAfterMs: parseRetryAfter(res.headers["retry-after"]),
  });
}

export async function sendJson(call: JsonCall): Promise<Record<string, unknown>> {
  return (await sendJsonText(call)).body;
}

/** The parsed answer and its exact text (so a pass-through can send the bytes it got). */
export async function sendJsonText(call: JsonCall): Promise<{ body: Record<string, unknown>; text: string }> {
  const res = await send(call);
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    throw fromNetworkError(err, call.signal);
  }
  try {
    return { body: JSON.parse(text) as Record<string, unknown>, text };
  } catch {
    throw new UpstreamError("malformed", `upstream sent invalid JSON: ${text.slice(0, 120)}`);
  }
}

/** The human message inside an upstream error body (OpenAI, llama.cpp, Ollama, Anthropic shapes). */
export function upstreamErrorMessage(text: string): string {
  if (!text) return "";
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; detail?: unknown };
    if (typeof j.error === "string") return j.error;
    if (j.error && typeof j.error === "object" && typeof (j.error as { message?: unknown }).message === "string") {
      return (j.error as { message: string }).message;
    }
    if (typeof j.message === "string") return j.message;
    if (typeof j.detail === "string") return j.detail;
  } catch {
    // not JSON
  }
  return text.slice(0, 300);
}

export function joinUrl(base: string, path: string): string {
  return base.replace(/\/+$/, "") + (path.startsWith("/") ? path : "/" + path);
}
