// The servers labgate launches: GET /admin/lab/processes, start / stop / restart,
// and their output (GET /admin/lab/processes/:name/logs, ?follow=1 as SSE).
import type { FastifyPluginAsync } from "fastify";
import type { ServerResponse } from "node:http";
import { UnknownProcessError } from "../lab/processes.ts";
import { SupervisorStartError } from "../lab/supervisor.ts";
import type { GatewayDeps } from "./deps.ts";
import { ApiError } from "./errors.ts";

const MAX_LINES = 2000;

export const labProcessRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    const following = new Set<ServerResponse>();
    app.addHook("preClose", async () => {
      for (const res of following) res.end();
    });

    const known = (name: string): void => {
      if (!deps.processes.has(name)) throw new ApiError(404, `No launched server named \`${name}\`.`, { code: "process_not_found" });
    };

    app.get("/processes", async () => ({ object: "list", data: deps.processes.list() }));

    const action = (what: "start" | "stop" | "restart") => async (request: { params: { name: string } }) => {
      const name = request.params.name;
      known(name);
      try {
        return await deps.processes[what](name);
      } catch (err) {
        if (err instanceof UnknownProcessError) throw new ApiError(404, err.message, { code: "process_not_found" });
        if (err instanceof SupervisorStartError) {
          throw new ApiError(409, `${name} did not start: ${deps.processes.redact(err.failure?.reason ?? err.message)}`, { code: "process_start_failed" });
        }
        throw err;
      }
    };
    app.post<{ Params: { name: string } }>("/processes/:name/start", action("start"));
    app.post<{ Params: { name: string } }>("/processes/:name/stop", action("stop"));
    app.post<{ Params: { name: string } }>("/processes/:name/restart", action("restart"));

    app.get<{ Params: { name: string }; Querystring: { lines?: string; follow?: string } }>("/processes/:name/logs", (request, reply) => {
      const name = request.params.name;
      known(name);
      const n = Math.min(MAX_LINES, Math.max(1, Number(request.query.lines ?? 200) || 200));
      const lines = deps.processes.logs(name, n).map((l) => ({ stream: l.stream, line: l.line, at: new Date(l.at).toISOString() }));
      if (request.query.follow !== "1" && request.query.follow !== "true") {
        void reply.send({ object: "list", data: lines });
        return;
      }
      // Follow: the recent lines, then each new one, as SSE events named "log".
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", "x-accel-buffering": "no" });
      following.add(res);
      const send = (l: { stream: string; line: string; at: string }): void => {
        if (res.writableLength > 1 << 20) res.destroy(); // a reader this far behind reconnects
        else if (!res.destroyed) res.write(`event: log\ndata: ${JSON.stringify(l)}\n\n`);
      };
      for (const l of lines) send(l);
      const stop = deps.processes.follow(name, (l) => send({ stream: l.stream, line: l.line, at: new Date(l.at).toISOString() }));
      const heartbeat = setInterval(() => !res.destroyed && res.write(": heartbeat\n\n"), 15_000);
      res.on("close", () => {
        stop();
        clearInterval(heartbeat);
        following.delete(res);
      });
    });
  };
