// Bodies a hostile client sends are refused before routing with a 400 that names
// the limit: no upstream sees them, no breaker counts them, the model keeps serving.
import { describe, expect, it } from "vitest";
import { MAX_BODY_DEPTH, MAX_MESSAGES, MAX_MODEL_LENGTH } from "../../gateway/api/body-limits.ts";
import type { ProviderAdapter } from "../../gateway/providers/types.ts";
import { ProviderRuntime } from "../../gateway/router/runtime.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

function nested(depth: number): string {
  return `{"model":"m","messages":[{"role":"user","content":"hi","x":${"[".repeat(depth)}${"]".repeat(depth)}}]}`;
}

async function post(url: string, body: string): Promise<{ status: number; body: { error?: { message: string; type: string; code: string | null; param: string | null } } }> {
  const res = await fetch(`${url}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { status: res.status, body: (await res.json()) as never };
}

describe("hostile request bodies", () => {
  it("a body nested 5,000 levels deep is a 400 naming the limit, never reaches the upstream and never opens the breaker", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway({
      providers: { a: { type: "openai-compatible", base_url: up.v1 } },
      models: { m: { deployments: [{ provider: "a", model: "x" }] } },
      router: { circuit_breaker: { consecutive_failures: 2 } },
    });
    const deep = nested(5000);
    expect(deep.length).toBeLessThan(20_100);
    for (let i = 0; i < 5; i++) {
      const r = await post(gw.v1, deep);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ type: "invalid_request_error", code: "body_too_deep" });
      expect(r.body.error!.message).toContain(String(MAX_BODY_DEPTH));
    }
    expect(up.hits()).toBe(0);
    // Nesting within the limit still goes through, and the model still serves.
    expect((await post(gw.v1, nested(MAX_BODY_DEPTH - 5))).status).toBe(200);
    const ok = await post(gw.v1, JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }));
    expect(ok.status).toBe(200);
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { deployments: { breaker_state: string }[] }[] };
    expect(providers.data[0]!.deployments[0]!.breaker_state).toBe("closed");
  });

  it("an oversized model name or too many messages is a 400 naming the limit, and nothing of it is stored", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway({ providers: { a: { type: "openai-compatible", base_url: up.v1 } }, models: { m: { deployments: [{ provider: "a", model: "x" }] } } });
    const longName = await post(gw.v1, JSON.stringify({ model: "x".repeat(1_000_000), messages: [{ role: "user", content: "hi" }] }));
    expect(longName.status).toBe(400);
    expect(longName.body.error).toMatchObject({ param: "model", type: "invalid_request_error" });
    expect(longName.body.error!.message).toContain(String(MAX_MODEL_LENGTH));
    expect(longName.body.error!.message.length).toBeLessThan(300);

    const many = await post(gw.v1, JSON.stringify({ model: "m", messages: Array.from({ length: MAX_MESSAGES + 1 }, () => ({ role: "user", content: "a" })) }));
    expect(many.status).toBe(400);
    expect(many.body.error!.message).toContain(String(MAX_MESSAGES));
    expect(up.hits()).toBe(0);
    gw.gateway.requestLog.flush();
    const stored = gw.gateway.db.prepare("SELECT MAX(LENGTH(public_model)) AS n FROM request_log").get() as { n: number | null };
    expect(stored.n ?? 0).toBeLessThanOrEqual(MAX_MODEL_LENGTH);
  });
});

describe("a failure inside labgate", () => {
  it("is a 500 in OpenAI's shape, never retried, never counted against the upstream", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway({
      providers: { a: { type: "openai-compatible", base_url: up.v1 }, b: { type: "openai-compatible", base_url: up.v1 } },
      // a first, always: a request that failed over or retried would show b, or a second attempt.
      models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "x" }, { provider: "b", model: "x" }] } },
      router: { retries: 2, circuit_breaker: { consecutive_failures: 2 } },
    });
    // Provider a's adapter fails in labgate's own code before any byte leaves (as JSON encoding of a
    // hostile body once did): what a bug in labgate looks like to the router.
    const real = gw.gateway.registry.get("a")!;
    const broken = new ProviderRuntime({
      name: "a",
      config: real.config,
      // The real adapter, but for chat (its other methods, close included, come from its prototype chain).
      adapter: Object.assign(Object.create(real.adapter!) as ProviderAdapter, {
        chat: async () => {
          throw new RangeError("Maximum call stack size exceeded");
        },
      }),
      enabled: true,
    });
    gw.gateway.registry.replace(broken);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${gw.v1}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-debug-mode": "true" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
      });
      statuses.push(res.status);
      if (res.status === 500) {
        const body = (await res.json()) as { error: { message: string; type: string; code: string } };
        expect(body.error).toMatchObject({ type: "api_error", code: "internal_error", message: "Internal error in labgate." });
        expect(JSON.parse(res.headers.get("x-labgate-attempts") ?? "[]")).toHaveLength(1); // not retried, not failed over
      } else await res.text();
    }
    expect(statuses).toEqual(Array(6).fill(500));
    const providers = (await (await fetch(`${gw.url}/admin/providers`)).json()) as { data: { name: string; deployments: { breaker_state: string; failures: number }[] }[] };
    expect(providers.data.find((p) => p.name === "a")!.deployments[0]).toMatchObject({ breaker_state: "closed", failures: 0 });
    gw.gateway.requestLog.flush();
    const rows = gw.gateway.db.prepare("SELECT status, error_class FROM request_log WHERE status = 500").all() as { status: number; error_class: string }[];
    expect(rows.every((r) => r.error_class === "internal")).toBe(true);
  });
});
