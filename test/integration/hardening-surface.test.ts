// The auth surface and what web pages can do to a gateway on loopback (issue #9, items 5
// and 6). The attacks are sent with the exact headers a browser sends for them: a page
// served from a second origin on loopback (its own HTTP server on 127.0.0.1) sends a
// cross-site POST with its Origin; a DNS-rebinding page reaches 127.0.0.1 with its own
// name in Host. Nothing here waits for time to pass: the probe cache reads Date.now,
// which the cache test fakes.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PROBE_CACHE_MS } from "../../gateway/api/health.ts";
import type { FakeOpenAI } from "../fixtures/fake-openai.ts";
import type { TestGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";
import { expectOpenAIError, rawExchange, send } from "../fixtures/raw-http.ts";

const MASTER = "sk-lab-master-5";
const ADMIN = "sk-lab-admin-5";
const env = { LABGATE_MASTER_KEY: MASTER, LABGATE_ADMIN_KEY: ADMIN, OPENAI_API_KEY: "sk-cloud-upstream" };
const lab = useLab({ env });

afterEach(() => {
  vi.useRealTimers();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const chatBody = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] });

/** A cloud provider (its key is the lab's to lose) and a local one, both loopback fakes. */
async function start(server: Record<string, unknown>): Promise<{ gw: TestGateway; cloud: FakeOpenAI; local: FakeOpenAI }> {
  const cloud = await lab.fake({ name: "cloud" });
  const local = await lab.fake({ name: "local" });
  const gw = await lab.gateway({
    server,
    providers: {
      cloud: { type: "openai", base_url: cloud.v1, api_key: "env:OPENAI_API_KEY" },
      local: { type: "llamacpp", base_url: local.url },
    },
    models: { m: { deployments: [{ provider: "cloud", model: "gpt-4o" }] } },
  });
  return { gw, cloud, local };
}

const upstreamGets = (f: FakeOpenAI) => f.requests.filter((r) => r.method === "GET").length;
const enabled = (gw: TestGateway, name: string) => gw.gateway.registry.get(name)!.enabled;

/** A second origin on loopback: the page an attacker's site would be, on another port. */
async function otherOrigin(): Promise<{ origin: string; close(): Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><script>fetch(GATEWAY + '/admin/providers/cloud/disable', {method: 'POST', mode: 'no-cors'})</script>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // It really is a page another origin serves.
  expect((await fetch(origin)).status).toBe(200);
  return { origin, close: () => new Promise((r) => server.close(() => r())) };
}

describe("with server.master_key: who may call what", () => {
  it("/health stays open for liveness probes; /health/<provider> and /metrics need the master or admin key", async () => {
    const { gw, cloud } = await start({ master_key: "env:LABGATE_MASTER_KEY" });
    expect((await send(gw.url, "/health")).status).toBe(200);

    const before = upstreamGets(cloud);
    for (const headers of [{}, bearer("sk-wrong"), { "x-api-key": "nope" }] as Record<string, string>[]) {
      const h = await send(gw.url, "/health/cloud", { headers });
      expect(h.status).toBe(401);
      expectOpenAIError(h.text);
      const m = await send(gw.url, "/metrics", { headers });
      expect(m.status).toBe(401);
      expectOpenAIError(m.text);
    }
    // Refused callers cost the provider nothing.
    expect(upstreamGets(cloud)).toBe(before);

    for (const key of [MASTER]) {
      expect((await send(gw.url, "/health/cloud", { headers: bearer(key) })).status).toBe(200);
      const m = await send(gw.url, "/metrics", { headers: bearer(key) });
      expect(m.status).toBe(200);
      expect(m.text).toMatch(/^# HELP /m);
    }
  });

  it("with an admin key too: /metrics and /health/<provider> take either key; /admin takes only the admin key", async () => {
    const { gw } = await start({ master_key: "env:LABGATE_MASTER_KEY", admin_key: "env:LABGATE_ADMIN_KEY" });
    for (const key of [MASTER, ADMIN]) {
      expect((await send(gw.url, "/metrics", { headers: bearer(key) })).status).toBe(200);
      expect((await send(gw.url, "/health/cloud", { headers: bearer(key) })).status).toBe(200);
    }
    for (const headers of [{}, bearer("sk-wrong"), bearer(MASTER)] as Record<string, string>[]) {
      const r = await send(gw.url, "/admin/providers", { headers });
      expect(r.status).toBe(401);
      expectOpenAIError(r.text);
      const d = await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers });
      expect(d.status).toBe(401);
      expectOpenAIError(d.text);
    }
    expect(enabled(gw, "cloud")).toBe(true);
    expect((await send(gw.url, "/admin/providers", { headers: bearer(ADMIN) })).status).toBe(200);
    expect((await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: bearer(ADMIN) })).status).toBe(200);
    expect(enabled(gw, "cloud")).toBe(false);
  });

  it("without an admin key, /admin on loopback needs the master key: no key or a wrong one changes nothing", async () => {
    const { gw } = await start({ master_key: "env:LABGATE_MASTER_KEY" });
    for (const headers of [{}, bearer("sk-wrong"), bearer(ADMIN)] as Record<string, string>[]) {
      expect((await send(gw.url, "/admin/providers", { headers })).status).toBe(401);
      expect((await send(gw.url, "/admin/requests", { headers })).status).toBe(401);
      const d = await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers });
      expect(d.status).toBe(401);
      expectOpenAIError(d.text);
      expect((await send(gw.url, "/admin/circuit-breaker/reset", { method: "POST", headers })).status).toBe(401);
    }
    expect(enabled(gw, "cloud")).toBe(true);
    // Nothing was persisted either.
    expect(gw.gateway.db.prepare("SELECT count(*) AS n FROM provider_state").get()).toEqual({ n: 0 });
    const ok = await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: bearer(MASTER) });
    expect(ok.status).toBe(200);
    expect(enabled(gw, "cloud")).toBe(false);
  });

  it("without any key, /metrics and /health/<provider> stay open as before, and /admin answers loopback callers", async () => {
    const { gw } = await start({});
    expect((await send(gw.url, "/metrics")).status).toBe(200);
    expect((await send(gw.url, "/health/cloud")).status).toBe(200);
    expect((await send(gw.url, "/admin/providers")).status).toBe(200);
  });
});

describe("live provider probes are shared", () => {
  it("many /health/<provider> calls within PROBE_CACHE_MS make one upstream call with the provider's key; later, one more", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const { gw, cloud } = await start({ master_key: "env:LABGATE_MASTER_KEY" });
    const before = upstreamGets(cloud);
    // Concurrent and one after another: the clock does not move, so all of them share one probe.
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => send(gw.url, "/health/cloud", { headers: bearer(MASTER) })));
    for (let i = 0; i < 30; i++) concurrent.push(await send(gw.url, "/health/cloud", { headers: bearer(MASTER) }));
    expect(concurrent.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(concurrent.every((r) => (r.json() as { healthy: boolean }).healthy)).toBe(true);
    expect(upstreamGets(cloud)).toBe(before + 1);
    expect(cloud.requests.filter((r) => r.method === "GET").at(-1)!.headers.authorization).toBe("Bearer sk-cloud-upstream");

    vi.setSystemTime(Date.now() + PROBE_CACHE_MS - 1);
    await send(gw.url, "/health/cloud", { headers: bearer(MASTER) });
    expect(upstreamGets(cloud)).toBe(before + 1);
    vi.setSystemTime(Date.now() + 2);
    for (let i = 0; i < 10; i++) expect((await send(gw.url, "/health/cloud", { headers: bearer(MASTER) })).status).toBe(200);
    expect(upstreamGets(cloud)).toBe(before + 2);
  });
});

describe("Host: DNS rebinding", () => {
  it("a page whose name resolves to 127.0.0.1 gets 403 on every route, and reaches neither the log nor an upstream", async () => {
    const { gw, cloud } = await start({});
    const port = new URL(gw.url).port;
    for (const host of [`rebind.attacker.example:${port}`, "rebind.attacker.example", `127.0.0.1.nip.io:${port}`, `localhost.attacker.example:${port}`, `evil:${port}`]) {
      const reads = [
        await send(gw.url, "/admin/requests", { headers: { host } }),
        await send(gw.url, "/admin/providers", { headers: { host } }),
        await send(gw.url, "/v1/models", { headers: { host } }),
        await send(gw.url, "/metrics", { headers: { host } }),
        await send(gw.url, "/health", { headers: { host } }),
        await send(gw.url, "/health/cloud", { headers: { host } }),
        await send(gw.url, "/no/such/route", { headers: { host } }),
        await send(gw.url, "/v1/chat/completions", { method: "POST", headers: { host, "content-type": "application/json" }, body: chatBody }),
        await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: { host } }),
      ];
      for (const r of reads) {
        expect(r.status).toBe(403);
        expect(expectOpenAIError(r.text, "host_not_allowed").type).toBe("permission_error");
      }
    }
    expect(cloud.requests).toHaveLength(0);
    expect(enabled(gw, "cloud")).toBe(true);
    gw.gateway.requestLog.flush();
    expect(gw.gateway.requestLog.recent(10)).toHaveLength(0);
  });

  it("loopback names are allowed with any port, and server.allowed_hosts adds more", async () => {
    const { gw } = await start({ allowed_hosts: ["gpu-box.lab", "proxy.lab:8443"] });
    const port = new URL(gw.url).port;
    for (const host of [
      `127.0.0.1:${port}`,
      "127.0.0.1",
      `localhost:${port}`,
      "LOCALHOST:9999",
      "localhost.",
      `[::1]:${port}`,
      `127.0.0.2:${port}`,
      "127.255.0.9:80",
      `gpu-box.lab:${port}`,
      "GPU-BOX.LAB",
      "proxy.lab:8443",
    ]) {
      const r = await send(gw.url, "/v1/models", { headers: { host } });
      expect(r.status, host).toBe(200);
    }
    for (const host of ["proxy.lab:8444", "proxy.lab", "gpu-box.lab.evil.example", "127.0.0.1.evil.example", "128.0.0.1", "[::2]", "localhost:abc", ":80", "a:b:c"]) {
      const r = await send(gw.url, "/v1/models", { headers: { host } });
      expect(r.status, host).toBe(403);
    }
  });

  it("a request without a Host header is refused with 403 in OpenAI's shape (HTTP/1.1 requires Host)", async () => {
    const { gw } = await start({});
    const port = Number(new URL(gw.url).port);
    for (const req of ["GET /v1/models HTTP/1.1\r\n\r\n", "GET /health HTTP/1.0\r\n\r\n", "POST /admin/providers/cloud/disable HTTP/1.1\r\nContent-Length: 0\r\n\r\n"]) {
      const r = await rawExchange(port, req);
      expect(r.status).toBe(403);
      expectOpenAIError(r.body, "host_not_allowed");
    }
    expect(enabled(gw, "cloud")).toBe(true);
  });

  it('allowed_hosts: ["*"] turns the Host check off', async () => {
    const { gw } = await start({ allowed_hosts: ["*"] });
    expect((await send(gw.url, "/v1/models", { headers: { host: "anything.example" } })).status).toBe(200);
  });
});

describe("Origin: cross-site requests from another page on loopback", () => {
  it("a cross-site POST with no body (no preflight needed) cannot disable a provider, nor can a text/plain chat spend the cloud key", async () => {
    const { gw, cloud } = await start({});
    const page = await otherOrigin();
    try {
      const host = `127.0.0.1:${new URL(gw.url).port}`;
      // What a browser sends for fetch(url, {method: "POST", mode: "no-cors"}) and for a <form> post.
      for (const path of ["/admin/providers/cloud/disable", "/admin/circuit-breaker/reset"]) {
        const r = await send(gw.url, path, { method: "POST", headers: { host, origin: page.origin, "sec-fetch-site": "same-site" } });
        expect(r.status).toBe(403);
        expect(expectOpenAIError(r.text, "origin_not_allowed").type).toBe("permission_error");
        expect(r.headers["access-control-allow-origin"]).toBeUndefined();
      }
      const form = await send(gw.url, "/admin/providers/cloud/disable", {
        method: "POST",
        headers: { host, origin: page.origin, "content-type": "application/x-www-form-urlencoded" },
        body: "a=b",
      });
      expect(form.status).toBe(403);
      // A "simple" request: text/plain needs no preflight either.
      const chat = await send(gw.url, "/v1/chat/completions", { method: "POST", headers: { host, origin: page.origin, "content-type": "text/plain" }, body: chatBody });
      expect(chat.status).toBe(403);
      expectOpenAIError(chat.text, "origin_not_allowed");
      // Sandboxed frames and file:// pages send Origin: null.
      expect((await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: { host, origin: "null" } })).status).toBe(403);
      expect(enabled(gw, "cloud")).toBe(true);
      expect(cloud.hits()).toBe(0);
      gw.gateway.requestLog.flush();
      expect(gw.gateway.requestLog.recent(10)).toHaveLength(0);
    } finally {
      await page.close();
    }
  });

  it("the gateway's own pages and command-line tools (no Origin) keep working", async () => {
    const { gw, cloud } = await start({});
    const port = new URL(gw.url).port;
    const host = `127.0.0.1:${port}`;
    // curl, SDKs: no Origin.
    expect((await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: { host } })).status).toBe(200);
    // A page served by labgate itself, under any of its loopback names.
    for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]) {
      expect((await send(gw.url, "/admin/providers/cloud/enable", { method: "POST", headers: { host, origin } })).status).toBe(200);
    }
    expect((await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: { host: `localhost:${port}`, origin: `http://localhost:${port}` } })).status).toBe(200);
    expect(enabled(gw, "cloud")).toBe(false);
    // Another port of the same name is another origin.
    const other = await send(gw.url, "/admin/providers/cloud/enable", { method: "POST", headers: { host, origin: `http://127.0.0.1:${Number(port) + 1}` } });
    expect(other.status).toBe(403);
    expect(enabled(gw, "cloud")).toBe(false);
    // Reads from another origin are not state changes (the browser keeps the answer from the page without CORS).
    expect((await send(gw.url, "/v1/models", { headers: { host, origin: "http://127.0.0.1:1" } })).status).toBe(200);
    expect(cloud.hits()).toBe(0);
  });
});

describe("CORS for /v1: only server.cors_origins", () => {
  const allowed = "http://127.0.0.1:5173";

  it("answers the preflight of a configured origin, and refuses others", async () => {
    const { gw } = await start({ cors_origins: [allowed, "https://notebook.lab.example"] });
    const host = `127.0.0.1:${new URL(gw.url).port}`;
    const preflight = (origin: string, path = "/v1/chat/completions") =>
      send(gw.url, path, {
        method: "OPTIONS",
        headers: { host, origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type" },
      });
    const ok = await preflight(allowed);
    expect(ok.status).toBe(204);
    expect(ok.headers["access-control-allow-origin"]).toBe(allowed);
    expect(ok.headers["access-control-allow-methods"]).toMatch(/POST/);
    expect(ok.headers["access-control-allow-headers"]).toBe("authorization,content-type");
    expect((await preflight("https://notebook.lab.example", "/v1/models")).headers["access-control-allow-origin"]).toBe("https://notebook.lab.example");

    for (const origin of ["http://127.0.0.1:5174", "http://evil.example", "null"]) {
      const no = await preflight(origin);
      expect(no.status).toBe(403);
      expect(no.headers["access-control-allow-origin"]).toBeUndefined();
      expectOpenAIError(no.text, "origin_not_allowed");
    }
    // Not for /admin, whatever the list says.
    const admin = await preflight(allowed, "/admin/providers/cloud/disable");
    expect(admin.headers["access-control-allow-origin"]).toBeUndefined();
  });

  it("a configured origin can call /v1 (JSON, streams, and errors it must be able to read); others get no CORS headers; /admin stays closed to it", async () => {
    const { gw } = await start({ cors_origins: [allowed], master_key: "env:LABGATE_MASTER_KEY" });
    const host = `127.0.0.1:${new URL(gw.url).port}`;
    const models = await send(gw.url, "/v1/models", { headers: { host, origin: allowed, ...bearer(MASTER) } });
    expect(models.status).toBe(200);
    expect(models.headers["access-control-allow-origin"]).toBe(allowed);
    expect(String(models.headers.vary)).toMatch(/origin/i);

    const json = await send(gw.url, "/v1/chat/completions", { method: "POST", headers: { host, origin: allowed, "content-type": "application/json", ...bearer(MASTER) }, body: chatBody });
    expect(json.status).toBe(200);
    expect(json.headers["access-control-allow-origin"]).toBe(allowed);
    expect(String(json.headers["access-control-expose-headers"])).toMatch(/x-request-id/);

    const stream = await send(gw.url, "/v1/chat/completions", {
      method: "POST",
      headers: { host, origin: allowed, "content-type": "application/json", ...bearer(MASTER) },
      body: JSON.stringify({ model: "m", stream: true, messages: [{ role: "user", content: "hi" }] }),
    });
    expect(stream.status).toBe(200);
    expect(stream.headers["content-type"]).toMatch(/text\/event-stream/);
    expect(stream.headers["access-control-allow-origin"]).toBe(allowed);
    expect(stream.text.trim().endsWith("data: [DONE]")).toBe(true);

    const noKey = await send(gw.url, "/v1/models", { headers: { host, origin: allowed } });
    expect(noKey.status).toBe(401);
    expect(noKey.headers["access-control-allow-origin"]).toBe(allowed);

    const stranger = await send(gw.url, "/v1/models", { headers: { host, origin: "http://127.0.0.1:5174", ...bearer(MASTER) } });
    expect(stranger.headers["access-control-allow-origin"]).toBeUndefined();

    const admin = await send(gw.url, "/admin/providers/cloud/disable", { method: "POST", headers: { host, origin: allowed, ...bearer(MASTER) } });
    expect(admin.status).toBe(403);
    expect(admin.headers["access-control-allow-origin"]).toBeUndefined();
    expect(enabled(gw, "cloud")).toBe(true);
  });

  it("no cors_origins (the default): no CORS headers for anyone", async () => {
    const { gw } = await start({});
    const host = `127.0.0.1:${new URL(gw.url).port}`;
    const r = await send(gw.url, "/v1/models", { headers: { host, origin: allowed } });
    expect(r.status).toBe(200);
    expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    const p = await send(gw.url, "/v1/models", { method: "OPTIONS", headers: { host, origin: allowed, "access-control-request-method": "GET" } });
    expect(p.status).toBe(403);
  });
});
