// Bearer-key checks for /v1 (master key) and /admin (admin key, or loopback only).
import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { ApiError } from "./errors.ts";

export function presentedKey(request: FastifyRequest): string | undefined {
  const auth = request.headers.authorization;
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, "").trim();
  const x = request.headers["x-api-key"] ?? request.headers["api-key"];
  return typeof x === "string" ? x : undefined;
}

export function keysEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
}

/** The tenant a request acts for; throws 401 when a key is required and absent or wrong. */
export function authenticate(request: FastifyRequest, masterKey: string | undefined): string {
  if (!masterKey) return "anonymous";
  const key = presentedKey(request);
  if (!key) {
    throw new ApiError(401, "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.", { code: "missing_api_key" });
  }
  if (!keysEqual(key, masterKey)) throw new ApiError(401, "Incorrect API key provided.", { code: "invalid_api_key" });
  return "master";
}

export function isLoopback(address: string | undefined): boolean {
  return address === "127.0.0.1" || address === "::1" || address === "::ffff:127.0.0.1" || (address?.startsWith("127.") ?? false);
}

export function authorizeAdmin(request: FastifyRequest, adminKey: string | undefined): void {
  if (adminKey) {
    const key = presentedKey(request);
    if (!key || !keysEqual(key, adminKey)) throw new ApiError(401, "Admin endpoints need the admin key (Authorization: Bearer <admin key>).", { code: "invalid_admin_key" });
    return;
  }
  if (!isLoopback(request.socket.remoteAddress)) {
    throw new ApiError(403, "Admin endpoints are open only from 127.0.0.1 when no server.admin_key is configured.", { type: "permission_error", code: "admin_loopback_only" });
  }
}
