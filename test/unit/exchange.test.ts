// The HTTP exchange every HTTP adapter uses: bodies read with back-pressure,
// early exits that close the connection, dump() that keeps it, errors after data.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Agent } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { exchange } from "../../gateway/providers/exchange.ts";

let server: Server;
let base: string;
let agent: Agent;
let connections = 0;
const sockets = new Set<Socket>();
let route: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end("ok");

beforeEach(async () => {
  connections = 0;
  server = createServer((req, res) => route(req, res));
  server.on("connection", (s) => {
    connections++;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  agent = new Agent({ connections: 4, keepAliveTimeout: 10_000 });
});

afterEach(async () => {
  await agent.close();
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const call = (path: string, signal = new AbortController().signal) => exchange({ url: base + path, method: "POST", body: "{}", headers: { "content-type": "application/json" }, signal, dispatcher: agent });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("exchange", () => {
  it("answers status, headers and the whole body, and sends the request body", async () => {
    let received = "";
    route = (req, res) => {
      req.setEncoding("utf8");
      req.on("data", (d: string) => (received += d));
      req.on("end", () => {
        res.writeHead(201, { "x-thing": "yes", "retry-after": "3" });
        res.end("héllo wörld");
      });
    };
    const res = await call("/a?b=c");
    expect(res.statusCode).toBe(201);
    expect(res.headers["x-thing"]).toBe("yes");
    expect(await res.body.text()).toBe("héllo wörld");
    expect(received).toBe("{}");
  });

  it("a slow reader holds the upstream back instead of buffering its whole answer", async () => {
    const chunk = Buffer.alloc(64 * 1024, 97);
    let written = 0;
    let finished = false;
    route = (_req, res) => {
      res.writeHead(200);
      const pump = (): void => {
        while (written < 400) {
          written++;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end(() => (finished = true));
      };
      pump();
    };
    const res = await call("/big");
    const first = await res.body.next();
    await sleep(300);
    // 25 MiB offered; the socket buffers and undici's short queue hold far less.
    expect(finished).toBe(false);
    expect(written).toBeLessThan(200);
    let bytes = first.value?.length ?? 0;
    for await (const c of res.body) bytes += c.length;
    expect(finished).toBe(true);
    expect(bytes).toBe(400 * chunk.length);
  });

  it("leaving early closes the connection; dump() lets the rest go by and keeps it", async () => {
    route = (_req, res) => {
      res.writeHead(200);
      res.write("first ");
      setTimeout(() => res.end("last"), 50);
    };
    // The agent's pool says when a connection is back (or gone), instead of sleeping for it.
    const pool = () => (agent.stats as Record<string, { connected: number; free: number } | undefined>)[base];
    const a = await call("/x");
    await a.body.next();
    a.body.dump();
    await expect.poll(() => pool()?.free, { timeout: 3000, interval: 5 }).toBe(1); // the rest went by; the connection is free again
    const b = await call("/x");
    expect((await b.body.next()).value?.toString()).toBe("first ");
    await b.body.return();
    await expect.poll(() => pool()?.connected, { timeout: 3000, interval: 5 }).toBe(0);
    expect(connections).toBe(1); // a's connection was reused for b
    const c = await call("/x");
    await c.body.text();
    expect(connections).toBe(2); // b's was closed, so c needed a new one
  });

  it("data that arrived before a dropped connection is read first, then the error", async () => {
    route = (req, res) => {
      res.writeHead(200);
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 30);
    };
    const res = await call("/drop");
    expect((await res.body.next()).value?.toString()).toBe("partial");
    await expect(res.body.next()).rejects.toThrow();
  });

  it("an abort signal cancels before the answer and during the body", async () => {
    route = (_req, res) => {
      res.writeHead(200);
      res.write("some");
    }; // never ends
    const before = new AbortController();
    const pending = call("/hang", before.signal);
    before.abort(new Error("gone"));
    await expect(pending).rejects.toThrow("gone");
    const during = new AbortController();
    const res = await call("/hang", during.signal);
    await res.body.next();
    const next = res.body.next();
    during.abort(new Error("stop"));
    await expect(next).rejects.toThrow("stop");
  });
});
