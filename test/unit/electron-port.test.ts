// Who holds the port, and what the app does about it (electron/port-decision.ts), against
// real listeners on loopback: nobody (start), a real labgate (attach), an HTTP server that
// is not labgate and a TCP server that speaks no HTTP (offer the next free port); and the
// single-instance decision.
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { canListen, decide, decidePort, isLabgateHealth, nextFreePort, probePort, singleInstanceDecision } from "../../electron/port-decision.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";
import { freePort } from "../fixtures/ports.ts";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function listen(server: HttpServer | Server, port: number): Promise<void> {
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
}

describe("the port the app wants", () => {
  it("free: the app starts its gateway there", async () => {
    const port = await freePort();
    expect(await probePort("127.0.0.1", port)).toEqual({ kind: "free" });
    expect(await decidePort("127.0.0.1", port)).toEqual({ action: "start", port });
  });

  it("a running labgate: the app attaches to it instead of failing", async () => {
    const gw: TestGateway = await startGateway("providers: {}\nmodels: {}\n");
    closers.push(() => gw.close());
    const port = Number(new URL(gw.url).port);
    const d = await decidePort("127.0.0.1", port);
    expect(d).toMatchObject({ action: "attach", port });
    expect((d as { version: string }).version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("another HTTP server: says the port is taken and offers the next free one", async () => {
    const port = await freePort();
    // Answers {"status":"ok"} like many health endpoints, but is no labgate.
    const other = createHttpServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}'));
    await listen(other, port);
    const d = await decidePort("127.0.0.1", port);
    expect(d.action).toBe("offer-next");
    if (d.action !== "offer-next") return;
    expect(d.nextFree).not.toBeNull();
    expect(d.nextFree!).toBeGreaterThan(port);
    expect(await canListen("127.0.0.1", d.nextFree!)).toBe(true);
    expect(d.message).toBe(`Port ${port} is in use by another program (it answers /health with HTTP 200, not a labgate). labgate can run on port ${d.nextFree} instead.`);
  });

  it("a program that speaks no HTTP at all is another program too", async () => {
    const port = await freePort();
    const sockets = new Set<import("node:net").Socket>();
    const raw = createServer((s) => {
      sockets.add(s);
      s.on("error", () => {}); // the probe hangs up on it
      s.end("SSH-2.0-OpenSSH_9.6\r\n");
    });
    await listen(raw, port);
    closers.unshift(async () => sockets.forEach((s) => s.destroy()));
    expect(await probePort("127.0.0.1", port)).toMatchObject({ kind: "foreign", detail: expect.stringContaining("does not speak HTTP") });
  });

  it("the next free port skips ports that are taken", async () => {
    const taken = createServer();
    await listen(taken, 0);
    const port = (taken.address() as { port: number }).port;
    const next = await nextFreePort("127.0.0.1", port - 1);
    expect(next).not.toBeNull();
    expect(next).toBeGreaterThan(port);
  });

  it("decides from who holds the port", () => {
    expect(decide(4000, { kind: "free" }, null)).toEqual({ action: "start", port: 4000 });
    expect(decide(4000, { kind: "labgate", version: "0.1.0" }, null, { kind: "same-user" })).toEqual({ action: "attach", port: 4000, version: "0.1.0" });
    expect(decide(4000, { kind: "foreign", detail: "x" }, null)).toMatchObject({ action: "offer-next", nextFree: null, message: expect.stringContaining("No free port was found") });
  });

  it("recognises a labgate only by its whole /health answer", () => {
    expect(isLabgateHealth({ status: "ok", version: "0.1.0", uptime_s: 3, providers: 2, models: 1 })).toBe(true);
    expect(isLabgateHealth({ status: "ok" })).toBe(false);
    expect(isLabgateHealth({ status: "ok", version: "1" })).toBe(false);
    expect(isLabgateHealth("ok")).toBe(false);
  });
});

describe("single instance", () => {
  it("the first copy runs; a second one hands over to it and quits", () => {
    expect(singleInstanceDecision(true)).toBe("run");
    expect(singleInstanceDecision(false)).toBe("quit-and-focus-first");
  });
});
