// Before starting its gateway the app looks at the port: nobody there -> start one; a
// labgate there (started from a terminal, or by another copy of the app) -> attach to it
// instead of failing; another program -> say which port is taken and offer the next free one.
// Attaching hands the labgate the admin key (LABGATE_ADMIN_KEY, and whatever the user types
// into its /ui), so on a shared machine a labgate is attached to only when the listening
// socket belongs to this OS user: Linux says whose it is in /proc/net/tcp{,6}, macOS through
// lsof; where neither answers (Windows) the user is asked.
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, connect } from "node:net";

export type PortOccupant = { kind: "free" } | { kind: "labgate"; version: string } | { kind: "foreign"; detail: string };

/** Whose listening socket holds the port. */
export type PortOwner = { kind: "same-user" } | { kind: "other-user"; uids: number[] } | { kind: "unknown"; why: string };

export type PortDecision =
  | { action: "start"; port: number }
  | { action: "attach"; port: number; version: string }
  /** A labgate whose owner could not be checked: attach only if the user says so (else the next free port). */
  | { action: "ask-attach"; port: number; version: string; nextFree: number | null; message: string }
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

/** LISTEN in /proc/net/tcp's `st` column. */
const TCP_LISTEN = "0A";

/**
 * The uids owning listening sockets on `port`, from the text of /proc/net/tcp or /proc/net/tcp6:
 * a header line, then `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`,
 * addresses as HEX_IP:HEX_PORT.
 */
export function listenerUidsFromProcNet(text: string, port: number): number[] {
  const uids: number[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const local = f[1]!;
    const localPort = Number.parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
    if (f[3] !== TCP_LISTEN || localPort !== port) continue;
    const uid = Number(f[7]);
    if (Number.isInteger(uid)) uids.push(uid);
  }
  return uids;
}

/** The uids in `lsof -nP -iTCP:PORT -sTCP:LISTEN -Fu` output (field lines: `p<pid>`, `u<uid>`, ...). */
export function listenerUidsFromLsof(out: string): number[] {
  return out
    .split("\n")
    .filter((l) => /^u\d+$/.test(l.trim()))
    .map((l) => Number(l.trim().slice(1)));
}

/** Same user when every listener is ours; another user's when any is not; unknown when none was found. */
export function ownerFromUids(uids: number[], myUid: number | undefined, source: string): PortOwner {
  if (myUid === undefined) return { kind: "unknown", why: "this system has no user ids to compare" };
  if (uids.length === 0) return { kind: "unknown", why: `${source} shows no listening socket on the port` };
  const others = [...new Set(uids.filter((u) => u !== myUid))];
  return others.length === 0 ? { kind: "same-user" } : { kind: "other-user", uids: others };
}

export interface OwnerProbe {
  platform: NodeJS.Platform;
  /** process.getuid?.(): undefined on Windows. */
  uid: number | undefined;
  readFile(path: string): Promise<string>;
  /** Runs a command; rejects when it cannot run or fails. */
  run(command: string, args: string[]): Promise<string>;
}

export const realOwnerProbe: OwnerProbe = {
  platform: process.platform,
  uid: process.getuid?.(),
  readFile: (path) => readFile(path, "utf8"),
  run: (command, args) =>
    new Promise((resolve, reject) => execFile(command, args, { timeout: 5000 }, (err, stdout) => (err ? reject(err) : resolve(String(stdout))))),
};

/** Whose socket listens on `port`: /proc/net/tcp{,6} on Linux, lsof elsewhere, else unknown. */
export async function portOwner(port: number, probe: OwnerProbe = realOwnerProbe): Promise<PortOwner> {
  if (probe.uid === undefined) return { kind: "unknown", why: "this system has no user ids to compare" };
  if (probe.platform === "linux") {
    const texts = await Promise.all(["/proc/net/tcp", "/proc/net/tcp6"].map((f) => probe.readFile(f).catch(() => "")));
    const uids = texts.flatMap((t) => listenerUidsFromProcNet(t, port));
    if (uids.length > 0) return ownerFromUids(uids, probe.uid, "/proc/net/tcp");
  }
  try {
    return ownerFromUids(listenerUidsFromLsof(await probe.run("lsof", ["-nP", `-iTCP:${port}`, "-sTCP:LISTEN", "-Fu"])), probe.uid, "lsof");
  } catch (err) {
    return { kind: "unknown", why: `lsof could not tell (${(err as Error).message.split("\n")[0]})` };
  }
}

/**
 * The decision, from who holds the port, whose socket it is (for a labgate), and (when it
 * is not used) the next free port. A labgate of another user is treated like another program.
 */
export function decide(port: number, occupant: PortOccupant, nextFree: number | null, owner: PortOwner = { kind: "unknown", why: "not checked" }): PortDecision {
  switch (occupant.kind) {
    case "free":
      return { action: "start", port };
    case "labgate":
      if (owner.kind === "same-user") return { action: "attach", port, version: occupant.version };
      if (owner.kind === "other-user") {
        return decide(port, { kind: "foreign", detail: `a labgate run by another user (uid ${owner.uids.join(", ")}), which must not get your admin key` }, nextFree);
      }
      return {
        action: "ask-attach",
        port,
        version: occupant.version,
        nextFree,
        message:
          `A labgate ${occupant.version} answers on port ${port}, but whether it runs as your user could not be checked (${owner.why}). ` +
          "Attaching gives it your admin key. Attach only if you started it yourself." +
          (nextFree === null ? "" : ` Otherwise labgate can run on port ${nextFree}.`),
      };
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

/** Probe, then decide (checking the owner of a labgate, and looking for a free port only when it may be needed). */
export async function decidePort(host: string, port: number, probe: OwnerProbe = realOwnerProbe): Promise<PortDecision> {
  const occupant = await probePort(host, port);
  const owner = occupant.kind === "labgate" ? await portOwner(port, probe) : undefined;
  const needNext = occupant.kind === "foreign" || (occupant.kind === "labgate" && owner?.kind !== "same-user");
  return decide(port, occupant, needNext ? await nextFreePort(host, port) : null, owner);
}

/**
 * Single instance: Electron's requestSingleInstanceLock() says whether this is the first
 * copy; a second one hands over to the first (which shows its window) and quits.
 */
export function singleInstanceDecision(gotLock: boolean): "run" | "quit-and-focus-first" {
  return gotLock ? "run" : "quit-and-focus-first";
}
