// Before starting its gateway the app looks at the port: nobody there -> start one; a
// labgate there (started from a terminal, or by another copy of the app) -> attach to it
// instead of failing; another program -> say which port is taken and offer the next free one.
import { createServer, connect } from "node:net";

export type PortOccupant = { kind: "free" } | { kind: "labgate"; version: string } | { kind: "foreign"; detail: string };

export type PortDecision =
  | { action: "start"; port: number }
  | { action: "attach"; port: number; version: string }
  | { action: "offer-next"; port: number; nextFree: number | null; message: string };

/** Whether something accepts TCP connections on host:port. */
export function accepts(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (yes: boolean): void => {
      s.destroy();
      resolve(yes);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(timeoutMs, () => done(false));
  });
}

/**
 * A labgate's GET /health: {status: "ok", version, uptime_s, providers, models}
 * (gateway/api/health.ts). All five fields, so that another server's {"status":"ok"} is not taken for one.
 */
export function isLabgateHealth(body: unknown): body is { status: "ok"; version: string } {
  if (!body || typeof body !== "object") return false;
  const b = body as Record<string, unknown>;
  return b.status === "ok" && typeof b.version === "string" && typeof b.uptime_s === "number" && typeof b.providers === "number" && typeof b.models === "number";
}

/** Who holds host:port. A labgate busy with a load gets a few seconds to answer /health before it is taken for another program. */
export async function probePort(host: string, port: number, timeoutMs = 5000): Promise<PortOccupant> {
  if (!(await accepts(host, port, timeoutMs))) return { kind: "free" };
  const h = host.includes(":") ? `[${host}]` : host;
  try {
    const res = await fetch(`http://${h}:${port}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { kind: "foreign", detail: `it answers /health with HTTP ${res.status}, not a labgate` };
    }
    if (res.status === 200 && isLabgateHealth(body)) return { kind: "labgate", version: body.version };
    return { kind: "foreign", detail: `it answers /health with HTTP ${res.status}, not a labgate` };
  } catch (err) {
    return { kind: "foreign", detail: `it accepts connections but does not speak HTTP (${(err as Error).message})` };
  }
}

/** Whether this process could listen on host:port now. */
export function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** The first port after `from` this process could listen on, or null within `tries`. */
export async function nextFreePort(host: string, from: number, tries = 20): Promise<number | null> {
  for (let p = from + 1; p <= Math.min(65535, from + tries); p++) {
    if (await canListen(host, p)) return p;
  }
  return null;
}

/** The decision, from who holds the port (and, when it is taken by another program, the next free one). */
export function decide(port: number, occupant: PortOccupant, nextFree: number | null): PortDecision {
  switch (occupant.kind) {
    case "free":
      return { action: "start", port };
    case "labgate":
      return { action: "attach", port, version: occupant.version };
    case "foreign":
      return {
        action: "offer-next",
        port,
        nextFree,
        message:
          `Port ${port} is in use by another program (${occupant.detail}). ` +
          (nextFree === null ? "No free port was found after it; stop that program or set LABGATE_PORT." : `labgate can run on port ${nextFree} instead.`),
      };
  }
}

/** Probe, then decide (looking for a free port only when it is needed). */
export async function decidePort(host: string, port: number): Promise<PortDecision> {
  const occupant = await probePort(host, port);
  return decide(port, occupant, occupant.kind === "foreign" ? await nextFreePort(host, port) : null);
}

/**
 * Single instance: Electron's requestSingleInstanceLock() says whether this is the first
 * copy; a second one hands over to the first (which shows its window) and quits.
 */
export function singleInstanceDecision(gotLock: boolean): "run" | "quit-and-focus-first" {
  return gotLock ? "run" : "quit-and-focus-first";
}
