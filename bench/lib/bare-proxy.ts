// The bare pass-through: fastify parses the JSON body, undici forwards it to the
// upstream over a keep-alive pool, and the answer is piped back as it arrives.
// Nothing else: no routing, no accounting, no metrics. It is the practical
// ceiling for a Node gateway on this machine; labgate is measured against it.
import Fastify, { type FastifyInstance } from "fastify";
import { Pool } from "undici";

export interface BareProxy {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function startBareProxy(upstream: string, port = 0): Promise<BareProxy> {
  // Same pool shape as labgate's provider agent (gateway/providers/http.ts).
  const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  const app = Fastify({ logger: false });
  app.post("/v1/chat/completions", async (request, reply) => {
    const res = await pool.request({
      path: "/v1/chat/completions",
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(request.body),
    });
    reply.code(res.statusCode);
    const ct = res.headers["content-type"];
    if (typeof ct === "string") reply.header("content-type", ct);
    return reply.send(res.body);
  });
  await app.listen({ host: "127.0.0.1", port });
  const addr = app.server.address();
  const p = typeof addr === "object" && addr ? addr.port : port;
  return {
    url: `http://127.0.0.1:${p}`,
    app,
    async close() {
      await app.close();
      await pool.close();
    },
  };
}
