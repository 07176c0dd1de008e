// What keeps web pages from driving a gateway on loopback (DESIGN.md: "A gateway on loopback
// is reachable by every web page the user opens"):
// - a Host check on every request, so a DNS-rebinding page (Host: evil.example) gets a 403
//   (the class of Ollama's CVE-2024-28224);
// - state-changing requests (POST/PUT/PATCH/DELETE) that carry an Origin other than the
//   gateway's own are refused: browsers send one on every cross-site POST, command-line
//   tools and SDKs send none;
// - CORS for /v1 only for the origins in server.cors_origins.
// And the exposure rule: no listening on a network address without a master key unless asked.
import { networkInterfaces } from "node:os";
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import type { ServerConfig } from "../config/schema.ts";
import { errorBody } from "./errors.ts";

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const PORT = /^\d{1,5}$/;
const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const JSON_TYPE = "application/json; charset=utf-8";
const EXPOSED_HEADERS = "x-request-id, x-routed-provider, x-is-fallback, x-labgate-overhead-ms, x-labgate-attempts, retry-after";

/** `name[:port]` of a Host header or an origin without its scheme; undefined when malformed. */
export function splitHostPort(value: string): { name: string; port: string | undefined } | undefined {
  let name: string;
  let rest: string;
  if (value.startsWith("[")) {
    const end = value.indexOf("]");
    if (end < 0) return undefined;
    name = value.slice(0, end + 1);
    rest = value.slice(end + 1);
  } else {
    const colon = value.indexOf(":");
    if (colon < 0) return value === "" ? undefined : { name: value, port: undefined };
    if (value.indexOf(":", colon + 1) >= 0) return undefined; // an IPv6 address needs brackets
    name = value.slice(0, colon);
    rest = value.slice(colon);
  }
  if (rest === "") return { name, port: undefined };
  const port = rest.slice(1);
  if (rest[0] !== ":" || !PORT.test(port)) return undefined;
  return { name, port };
}

function isWildcard(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}

/** A bind address only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || LOOPBACK_V4.test(h) || h === "::ffff:127.0.0.1";
}

/** Why the gateway must not listen on `host` as configured, or undefined when it may. */
export function exposureProblem(host: string, masterKey: string | undefined, server: Pick<ServerConfig, "allow_unauthenticated">): string | undefined {
  if (isLoopbackHost(host) || masterKey || server.allow_unauthenticated) return undefined;
  return (
    `refusing to listen on ${host} without server.master_key: that address is reachable from the network, so anyone who can reach it ` +
    `could use /v1 (and spend the lab's cloud keys) and read /metrics. Set server.master_key (e.g. master_key: env:LABGATE_MASTER_KEY), ` +
    `listen on 127.0.0.1, or set server.allow_unauthenticated: true to serve the network without a key anyway.`
  );
}

/** Which Host headers (and so which origins) are this gateway's own. */
export class HostPolicy {
  /** Host names (lower case, IPv6 in brackets) accepted with any port. */
  private readonly names = new Set<string>(["localhost", "127.0.0.1", "[::1]"]);
  /** Whole Host header values accepted as they are: the fast path of every request. */
  private readonly exact = new Set<string>();
  private readonly anyHost: boolean;
  private port = -1;

  constructor(server: Pick<ServerConfig, "host" | "allowed_hosts">) {
    this.anyHost = server.allowed_hosts.includes("*");
    this.addName(server.host);
    for (const entry of server.allowed_hosts) {
      if (entry === "*") continue;
      const hp = splitHostPort(entry.toLowerCase());
      if (hp?.port !== undefined) this.exact.add(`${normalName(hp.name)}:${hp.port}`);
      else this.addName(entry);
    }
    this.refreshExact();
  }

  /** Called once listening: the port of the gateway's own origin, and the addresses it answers on. */
  listening(host: string, port: number): void {
    this.port = port;
    if (isWildcard(host)) {
      // Bound to every interface: the machine's own addresses are its names too.
      for (const addrs of Object.values(networkInterfaces())) {
        for (const a of addrs ?? []) if (!a.address.includes("%")) this.addName(a.address);
      }
    } else this.addName(host);
    this.refreshExact();
  }

  allows(host: string | undefined): boolean {
    if (this.anyHost) return true;
    if (host === undefined) return false;
    if (this.exact.has(host)) return true;
    const hp = splitHostPort(host.toLowerCase());
    return hp !== undefined && this.nameAllowed(hp.name);
  }

  /** The Origin of a page served by this gateway: the request's own Host, or an allowed name on the listening port. */
  ownOrigin(origin: string, host: string | undefined): boolean {
    const o = origin.toLowerCase();
    const https = o.startsWith("https://");
    if (!https && !o.startsWith("http://")) return false;
    const rest = o.slice(https ? 8 : 7);
    if (host !== undefined && rest === host.toLowerCase()) return true;
    if (this.anyHost) return false;
    const hp = splitHostPort(rest);
    if (!hp) return false;
    return (hp.port ?? (https ? "443" : "80")) === String(this.port) && this.nameAllowed(hp.name);
  }

  private nameAllowed(name: string): boolean {
    const n = name.endsWith(".") ? name.slice(0, -1) : name;
    return this.names.has(n) || LOOPBACK_V4.test(n);
  }

  private addName(name: string): void {
    if (isWildcard(name)) return;
    this.names.add(normalName(name));
  }

  private refreshExact(): void {
    for (const n of this.names) {
      this.exact.add(n);
      if (this.port >= 0) this.exact.add(`${n}:${this.port}`);
    }
  }
}

/** The authority of an absolute-form request target ("http://a:1/x" -> "a:1"); undefined for anything else. */
function authorityOf(target: string): string | undefined {
  const scheme = target.indexOf("://");
  if (scheme < 0) return undefined;
  const slash = target.indexOf("/", scheme + 3);
  return target.slice(scheme + 3, slash < 0 ? undefined : slash);
}

function normalName(name: string): string {
  const n = name.toLowerCase();
  return n.includes(":") && !n.startsWith("[") ? `[${n}]` : n;
}

export interface GuardState {
  /** Set when the gateway starts closing: new requests get a 503. */
  closing: boolean;
}

function refuse(reply: FastifyReply, status: number, message: string, type: string, code: string): void {
  reply.code(status).type(JSON_TYPE).send(JSON.stringify(errorBody(message, type, code)));
}

function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/**
 * The first hook of every request (before authentication): shutdown, Host, Origin and CORS.
 * Callback style and no allocation on the common path: one Set lookup on the Host header,
 * and nothing more unless the request carries an Origin (only browsers send one).
 */
export function installGuards(app: FastifyInstance, server: ServerConfig, hosts: HostPolicy, state: GuardState): void {
  const corsOrigins = new Set(server.cors_origins.map((o) => o.toLowerCase().replace(/\/$/, "")));

  app.addHook("onRequest", (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (state.closing) {
      reply.header("connection", "close");
      return refuse(reply, 503, "labgate is shutting down.", "api_error", "shutting_down");
    }
    const headers = request.headers;
    // An absolute-form target (GET http://name/...) names the host itself, and wins over Host (RFC 9112 3.2.2).
    const target = request.raw.url;
    const authority = target !== undefined && target.charCodeAt(0) !== 47 ? authorityOf(target) : undefined;
    if (!hosts.allows(headers.host) || (authority !== undefined && !hosts.allows(authority))) {
      const named = authority !== undefined && hosts.allows(headers.host) ? authority : headers.host;
      const shown = named === undefined ? "A request without a Host header is" : `Host "${clip(named)}" is`;
      return refuse(
        reply,
        403,
        `${shown} not allowed: labgate answers to localhost, 127.0.0.1, [::1], server.host and the names in server.allowed_hosts (a guard against DNS rebinding).`,
        "permission_error",
        "host_not_allowed",
      );
    }
    const origin = headers.origin;
    if (origin === undefined) return done();

    // From here on, a browser: CORS for /v1 from the configured origins, and no state change from foreign pages.
    const route = request.routeOptions.url;
    const v1 = route !== undefined && route.startsWith("/v1/");
    const cors = v1 && corsOrigins.size > 0 && corsOrigins.has(origin.toLowerCase());
    if (cors) {
      // On the raw response: streams are written there directly (SSE), and fastify merges them into its own answers.
      reply.raw.setHeader("access-control-allow-origin", origin);
      reply.raw.setHeader("access-control-expose-headers", EXPOSED_HEADERS);
      reply.raw.setHeader("vary", "Origin");
    }
    if (request.method === "OPTIONS" && v1) {
      if (!cors) return refuse(reply, 403, `Origin "${clip(origin)}" is not in server.cors_origins.`, "permission_error", "origin_not_allowed");
      const asked = headers["access-control-request-headers"];
      reply
        .code(204)
        .header("access-control-allow-methods", "GET, POST, OPTIONS")
        .header("access-control-allow-headers", typeof asked === "string" && asked.length <= 1024 ? asked : "authorization, content-type")
        .header("access-control-max-age", "600")
        .send();
      return;
    }
    if (STATE_CHANGING.has(request.method) && !cors && !hosts.ownOrigin(origin, headers.host)) {
      return refuse(
        reply,
        403,
        `Cross-origin request from "${clip(origin)}" refused: only pages served by labgate itself (or, for /v1, the origins in server.cors_origins) may send it.`,
        "permission_error",
        "origin_not_allowed",
      );
    }
    done();
  });

  // Preflights reach the hook above through this route; without an Origin it just lists the methods.
  app.options("/v1/*", (_request, reply) => {
    reply.code(204).header("allow", "GET, POST, OPTIONS").send();
  });
}
