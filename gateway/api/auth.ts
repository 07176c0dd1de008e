// Bearer-key checks for /v1 (master key), /admin (admin key, else master key, else loopback only)
// and the operator's read-only endpoints /metrics and /health/<provider> (master or admin key).
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

export interface GatewayKeys {
  masterKey: string | undefined;
  adminKey: string | undefined;
}

/**
 * /admin: the admin key when one is set, else the master key when one is set;
 * with neither, loopback callers only.
 */
export function authorizeAdmin(request: FastifyRequest, keys: GatewayKeys): void {
  const required = keys.adminKey ?? keys.masterKey;
  if (required) {
    const key = presentedKey(request);
    if (!key) {
      throw new ApiError(401, `Admin endpoints need the ${keys.adminKey ? "admin" : "master"} key (Authorization: Bearer <key>).`, { code: "missing_api_key" });
    }
    if (!keysEqual(key, required)) throw new ApiError(401, `Admin endpoints need the ${keys.adminKey ? "admin" : "master"} key; this one is not it.`, { code: "invalid_admin_key" });
    return;
  }
  if (!isLoopback(request.socket.remoteAddress)) {
    throw new ApiError(403, "Admin endpoints are open only from 127.0.0.1 when no server.admin_key is configured.", { type: "permission_error", code: "admin_loopback_only" });
  }
}

/**
 * /metrics and /health/<provider>: open when no master key is set (like /v1); with one,
 * the master key or the admin key. /health alone is always open (liveness probes).
 */
export function authorizeOperator(request: FastifyRequest, keys: GatewayKeys): void {
  if (!keys.masterKey) return;
  const key = presentedKey(request);
  if (!key) throw new ApiError(401, "This endpoint needs the master or admin key (Authorization: Bearer <key>).", { code: "missing_api_key" });
  if (keysEqual(key, keys.masterKey) || (keys.adminKey !== undefined && keysEqual(key, keys.adminKey))) return;
  throw new ApiError(401, "Incorrect API key provided.", { code: "invalid_api_key" });
}
