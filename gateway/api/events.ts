// GET /admin/events: the lab's live events as Server-Sent Events. A snapshot first
// (providers, model groups, servers...), then every change as it happens and a
// summary each second. A client that reconnects with Last-Event-ID gets what it
// missed when that is still kept, else a new snapshot.
import type { FastifyPluginAsync } from "fastify";
import type { ServerResponse } from "node:http";
import type { LabEvent } from "../telemetry/events.ts";
import type { GatewayDeps } from "./deps.ts";

/** A client this far behind is dropped (it reconnects with Last-Event-ID) rather than buffered without bound. */
const MAX_BUFFERED_BYTES = 1 << 20;
const HEARTBEAT_MS = 15_000;

function frame(e: LabEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify({ at: new Date(e.at).toISOString(), ...(e.data as object) })}\n\n`;
}

export const eventRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    const open = new Set<ServerResponse>();
    // Live streams never end by themselves: end them when the gateway closes.
    app.addHook("preClose", async () => {
      for (const res of open) res.end();
    });

    app.get<{ Querystring: { last_event_id?: string } }>("/events", (request, reply) => {
      const hub = deps.events;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      open.add(res);
      const send = (text: string): void => {
        if (res.destroyed || res.writableEnded) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          res.destroy();
          return;
        }
        res.write(text);
      };
      const lastHeader = request.headers["last-event-id"] ?? request.query.last_event_id;
      const lastId = typeof lastHeader === "string" && /^\d+$/.test(lastHeader) ? Number(lastHeader) : undefined;
      const missed = lastId === undefined ? undefined : hub.since(lastId);
      // The browser's EventSource retries on its own; 2 s keeps the dashboard's view fresh.
      send("retry: 2000\n\n");
      if (missed === undefined) {
        send(frame({ id: hub.lastId, type: "snapshot", at: Date.now(), data: deps.labSnapshot() }));
      } else {
        for (const e of missed) send(frame(e));
      }
      const unsubscribe = hub.subscribe((e) => send(frame(e)));
      const heartbeat = setInterval(() => send(": heartbeat\n\n"), HEARTBEAT_MS);
      res.on("close", () => {
        unsubscribe();
        clearInterval(heartbeat);
        open.delete(res);
      });
    });
  };
