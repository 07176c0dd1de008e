// The Router in-process, with scripted adapters: the attempt plan, overflow,
// retries and Retry-After, limits, breakers and cancellation, without HTTP.
import { describe, expect, it } from "vitest";
import { configSchema } from "../../gateway/config/schema.ts";
import { UpstreamError } from "../../gateway/providers/errors.ts";
import type { CallContext, CompletionResult, OpenAIBody, ProviderAdapter } from "../../gateway/providers/types.ts";
import { routeFailureError } from "../../gateway/api/errors.ts";
import { failureStatus } from "../../gateway/completion/outcome.ts";
import { RouteFailure, Router, type RoutedResponse, type RouterObserver } from "../../gateway/router/router.ts";
import { ProviderRegistry } from "../../gateway/providers/registry.ts";
import { ProviderRuntime } from "../../gateway/router/runtime.ts";

type Script = (call: number, ctx: CallContext, body: OpenAIBody) => Promise<CompletionResult>;

interface Stub extends ProviderAdapter {
  calls: number;
  active: number;
  maxActive: number;
  script: Script;
}

const ok = (who: string): CompletionResult => ({
  kind: "json",
  body: { choices: [{ index: 0, message: { role: "assistant", content: who }, finish_reason: "stop" }] },
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
});

const fail = (cls: ConstructorParameters<typeof UpstreamError>[0], opts: ConstructorParameters<typeof UpstreamError>[2] = {}): Script => async () => {
  throw new UpstreamError(cls, `injected ${cls}`, opts);
};

/** Resolves after ms, or rejects with the signal's reason when the attempt is aborted. */
const wait = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

function stub(name: string, script: Script): Stub {
  const s: Stub = {
    name,
    type: "openai-compatible",
    calls: 0,
    active: 0,
    maxActive: 0,
    script,
    async chat(body, ctx) {
      const n = ++s.calls;
      s.active++;
      s.maxActive = Math.max(s.maxActive, s.active);
      try {
        return await s.script(n, ctx, body);
      } finally {
        s.active--;
      }
    },
    completions(body, ctx) {
      return s.chat(body, ctx);
    },
    async embeddings() {
      throw new Error("not used");
    },
    async health() {
      return { ok: true, detail: "ok", latencyMs: 0 };
    },
    async close() {},
  };
  return s;
}

function build(
  config: Record<string, unknown>,
  scripts: Record<string, Script>,
  opts: { now?: () => number; sleep?: (ms: number, signal: AbortSignal) => Promise<void>; observer?: RouterObserver } = {},
): { router: Router; stubs: Record<string, Stub> } {
  const cfg = configSchema.parse(config);
  const stubs: Record<string, Stub> = {};
  const runtimes = Object.entries(cfg.providers).map(([name, pc]) => {
    stubs[name] = stub(name, scripts[name] ?? (async () => ok(name)));
    return new ProviderRuntime({ name, config: pc, adapter: stubs[name], enabled: true, now: opts.now });
  });
  return { router: new Router(cfg, ProviderRegistry.of(runtimes), { random: seeded(7), ...opts }), stubs };
}

function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

const providers = (...names: string[]) => Object.fromEntries(names.map((n) => [n, { type: "openai-compatible", base_url: "http://127.0.0.1:9/v1" }]));

const route = (router: Router, model: string, signal: AbortSignal = new AbortController().signal) =>
  router.route({ operation: "chat", model, body: { model, messages: [{ role: "user", content: "hi" }] }, stream: false, signal });

const answer = (r: RoutedResponse): string => {
  if (r.kind !== "json") throw new Error("expected json");
  return (r.body.choices as { message: { content: string } }[])[0]!.message.content;
};

/** A route failure with what the client is told: status (completion layer), OpenAI type and code (API layer). */
type SaidFailure = RouteFailure & { status: number; code: string; type: string };

function said(f: RouteFailure): SaidFailure {
  const status = failureStatus(f);
  const e = routeFailureError(f, status);
  return Object.assign(f, { status, code: e.code, type: e.type });
}

async function failure(p: Promise<unknown>): Promise<SaidFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof RouteFailure) return said(err);
    throw err;
  }
  throw new Error("expected a RouteFailure");
}

describe("attempt plan", () => {
  it("group deployments in strategy order, then its overflow, then fallback groups breadth-first, bounded by max_fallback_depth", async () => {
    const { router, stubs } = build(
      {
        providers: providers("a", "b", "cloud", "f1", "f2", "deep"),
        models: {
          main: {
            strategy: "priority",
            deployments: [{ provider: "cloud", model: "c", overflow: true }, { provider: "a", model: "a" }, { provider: "b", model: "b" }],
            fallbacks: ["fb1", "fb2"],
          },
          fb1: { deployments: [{ provider: "f1", model: "f1" }], fallbacks: ["deeper"] },
          fb2: { deployments: [{ provider: "f2", model: "f2" }] },
          deeper: { deployments: [{ provider: "deep", model: "deep" }] },
        },
        router: { retries: 0, max_fallback_depth: 1 },
      },
      { a: fail("server_error"), b: fail("reset"), cloud: fail("connect"), f1: fail("timeout"), f2: fail("server_error"), deep: async () => ok("deep") },
    );
    const f = await failure(route(router, "main"));
    expect(f.attempts.map((a) => [a.attempt, a.provider, a.error_class])).toEqual([
      [1, "a", "server_error"],
      [2, "b", "reset"],
      [3, "cloud", "connect"],
      [4, "f1", "timeout"],
      [5, "f2", "server_error"],
    ]);
    expect(stubs.deep!.calls).toBe(0); // depth 2 > max_fallback_depth 1
  });

  it("a fallback group that answers is reported as a fallback with its depth", async () => {
    const { router } = build(
      {
        providers: providers("a", "f"),
        models: { main: { deployments: [{ provider: "a", model: "a" }], fallbacks: ["fb"] }, fb: { deployments: [{ provider: "f", model: "f" }] } },
        router: { retries: 0 },
      },
      { a: fail("server_error") },
    );
    const r = await route(router, "main");
    expect(answer(r)).toBe("f");
    expect([r.isFallback, r.isOverflow, r.fallbackDepth]).toEqual([true, false, 1]);
  });

  it("an unknown model is a 404 model_not_found", async () => {
    const { router } = build({ providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } } }, {});
    const f = await failure(route(router, "nope"));
    expect([f.status, f.code]).toEqual([404, "model_not_found"]);
  });
});

describe("overflow", () => {
  const config = {
    providers: providers("local", "cloud"),
    models: {
      main: {
        deployments: [
          { provider: "local", model: "l", max_in_flight: 1 },
          { provider: "cloud", model: "c", overflow: true },
        ],
      },
    },
    router: { retries: 0 },
  };

  it("takes no traffic while the local deployment is free", async () => {
    const { router, stubs } = build(config, {});
    for (let i = 0; i < 20; i++) {
      const r = await route(router, "main");
      expect([answer(r), r.isFallback, r.isOverflow]).toEqual(["local", false, false]);
    }
    expect(stubs.cloud!.calls).toBe(0);
  });

  it("takes the traffic the saturated local deployment cannot, flagged as overflow", async () => {
    const { router, stubs } = build(config, {
      local: async (_n, ctx) => {
        await wait(50, ctx.signal);
        return ok("local");
      },
    });
    const results = await Promise.all(Array.from({ length: 5 }, () => route(router, "main")));
    expect(results.map(answer)).toEqual(["local", "cloud", "cloud", "cloud", "cloud"]);
    expect(results.slice(1).every((r) => r.isOverflow && r.isFallback)).toBe(true);
    expect(stubs.local!.maxActive).toBe(1);
  });
});

describe("availability is checked again right before each attempt", () => {
  it("a deployment that filled up while an earlier candidate was failing is not pushed past max_in_flight", async () => {
    // Request 1 tries A (slow failure); meanwhile request 2 takes B's only slot.
    // When A fails, request 1 must not squeeze into B as well.
    const { router, stubs } = build(
      {
        providers: providers("a", "b"),
        models: {
          main: {
            strategy: "priority",
            deployments: [
              { provider: "a", model: "a", max_in_flight: 1 },
              { provider: "b", model: "b", max_in_flight: 1 },
            ],
          },
        },
        router: { retries: 0 },
      },
      {
        a: async (_n, ctx) => {
          await wait(30, ctx.signal);
          throw new UpstreamError("server_error", "a failed");
        },
        b: async (_n, ctx) => {
          await wait(150, ctx.signal);
          return ok("b");
        },
      },
    );
    const first = route(router, "main").then(
      (r) => ({ ok: true as const, who: answer(r) }),
      (e: unknown) => ({ ok: false as const, status: said(e as RouteFailure).status }),
    );
    await new Promise((r) => setTimeout(r, 5));
    const second = await route(router, "main");
    expect(answer(second)).toBe("b");
    await first;
    expect(stubs.b!.maxActive).toBe(1);
  });
});

describe("retries and backoff", () => {
  it("waits what Retry-After asks before retrying the same deployment", async () => {
    const delays: number[] = [];
    const { router, stubs } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 2, retry_backoff_ms: 100 } },
      { a: async (n) => (n === 1 ? Promise.reject(new UpstreamError("rate_limited", "slow down", { upstreamStatus: 429, retryAfterMs: 1000 })) : ok("a")) },
      {
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    const r = await route(router, "main");
    expect(answer(r)).toBe("a");
    expect(stubs.a!.calls).toBe(2);
    expect(delays).toEqual([1000]);
    expect(r.attempts.map((a) => a.error_class)).toEqual(["rate_limited", null]);
  });

  it("without Retry-After, backs off exponentially with jitter between passes", async () => {
    const delays: number[] = [];
    const { router, stubs } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 3, retry_backoff_ms: 100, retry_backoff_max_ms: 300 } },
      { a: fail("server_error") },
      {
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    const f = await failure(route(router, "main"));
    expect(stubs.a!.calls).toBe(4);
    expect(f.status).toBe(502);
    expect(delays).toHaveLength(3);
    expect(delays[0]).toBeGreaterThanOrEqual(50);
    expect(delays[0]).toBeLessThanOrEqual(100);
    expect(delays[1]).toBeGreaterThanOrEqual(100);
    expect(delays[1]).toBeLessThanOrEqual(200);
    expect(delays[2]).toBeGreaterThanOrEqual(150); // capped at 300
    expect(delays[2]).toBeLessThanOrEqual(300);
  });

  it("a Retry-After longer than retry_backoff_max_ms is handed to the client instead of holding the request", async () => {
    const delays: number[] = [];
    const { router, stubs } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 2, retry_backoff_max_ms: 5000 } },
      { a: fail("rate_limited", { upstreamStatus: 429, retryAfterMs: 60_000 }) },
      {
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    const f = await failure(route(router, "main"));
    expect(delays).toEqual([]);
    expect(stubs.a!.calls).toBe(1);
    expect([f.status, f.retryAfterMs]).toEqual([429, 60_000]);
  });

  it("a 400 from the upstream is neither retried nor sent elsewhere", async () => {
    const { router, stubs } = build(
      { providers: providers("a", "b"), models: { main: { strategy: "priority", deployments: [{ provider: "a", model: "a" }, { provider: "b", model: "b" }] } } },
      { a: fail("bad_request", { upstreamStatus: 400 }) },
    );
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(400);
    expect([stubs.a!.calls, stubs.b!.calls]).toEqual([1, 0]);
  });

  it("a client that goes away during the backoff ends the request as cancelled, not as a failed fallback", async () => {
    const results: boolean[] = [];
    const ac = new AbortController();
    const { router, stubs } = build(
      { providers: providers("a", "b"), models: { main: { strategy: "priority", deployments: [{ provider: "a", model: "a" }, { provider: "b", model: "b" }] } }, router: { retries: 2 } },
      { a: fail("server_error"), b: fail("server_error") },
      {
        sleep: async () => {
          ac.abort();
        },
        observer: { onFallbackResult: (_m, success) => results.push(success) },
      },
    );
    const f = await failure(route(router, "main", ac.signal));
    expect([f.status, f.errorClass]).toEqual([499, "cancelled"]);
    expect(stubs.a!.calls).toBe(1);
    expect(results).toEqual([]);
  });
});

describe("limits", () => {
  it("rpm: a deployment over its limit hands over to the other; none left is a 429 with the time until a slot frees", async () => {
    let now = 1_000_000;
    const { router } = build(
      {
        providers: providers("a", "b"),
        models: { main: { strategy: "priority", deployments: [{ provider: "a", model: "a", rpm: 2 }, { provider: "b", model: "b", rpm: 3 }] } },
      },
      {},
      { now: () => now },
    );
    const who: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await route(router, "main");
      who.push(answer(r));
      expect(r.isFallback).toBe(false);
      now += 1000;
    }
    expect(who).toEqual(["a", "a", "b", "b", "b"]);
    const f = await failure(route(router, "main"));
    expect([f.status, f.code]).toEqual([429, "rate_limit_exceeded"]);
    // a's first request was at t0, 5 s ago: a slot frees 55 s from now.
    expect(f.retryAfterMs).toBe(55_000);
    now += 60_000;
    expect(answer(await route(router, "main"))).toBe("a");
  });

  it("provider rpm is shared by every deployment on that provider", async () => {
    const now = 5_000_000;
    const { router } = build(
      {
        providers: { ...providers("b"), a: { type: "openai-compatible", base_url: "http://127.0.0.1:9/v1", rpm: 2 } },
        models: {
          m1: { deployments: [{ provider: "a", model: "x" }] },
          m2: { strategy: "priority", deployments: [{ provider: "a", model: "y" }, { provider: "b", model: "y" }] },
        },
      },
      {},
      { now: () => now },
    );
    expect(answer(await route(router, "m1"))).toBe("a");
    expect(answer(await route(router, "m2"))).toBe("a");
    expect(answer(await route(router, "m2"))).toBe("b");
    const f = await failure(route(router, "m1"));
    expect(f.status).toBe(429);
  });

  it("every deployment saturated (max_in_flight) is a 429 too", async () => {
    const { router } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a", max_in_flight: 1 }] } } },
      {
        a: async (_n, ctx) => {
          await wait(40, ctx.signal);
          return ok("a");
        },
      },
    );
    const first = route(router, "main");
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(429);
    expect(f.retryAfterMs).toBeGreaterThan(0);
    expect(answer(await first)).toBe("a");
  });
});

describe("circuit breaker in the router", () => {
  // Panic off: these tests are about what an open breaker does on its own.
  const cb = { consecutive_failures: 2, cooldown_s: 10, min_requests: 100, half_open_probes: 1, panic_threshold: 0 };

  it("opens after consecutive failures, then the deployment is skipped without a call", async () => {
    let now = 0;
    const { router, stubs } = build(
      { providers: providers("a", "b"), models: { main: { strategy: "priority", deployments: [{ provider: "a", model: "a" }, { provider: "b", model: "b" }] } }, router: { retries: 0, circuit_breaker: cb } },
      { a: fail("server_error") },
      { now: () => now },
    );
    await route(router, "main");
    await route(router, "main");
    expect(stubs.a!.calls).toBe(2);
    const d = router.group("main")!.deployments[0]!;
    expect(d.breaker.state).toBe("open");
    const r = await route(router, "main");
    expect(answer(r)).toBe("b");
    expect(r.attempts.map((a) => a.provider)).toEqual(["b"]);
    expect(stubs.a!.calls).toBe(2);
    // After the cooldown a probe goes through; its success closes the breaker.
    now += 10_000;
    stubs.a!.script = async () => ok("a");
    expect(answer(await route(router, "main"))).toBe("a");
    expect(d.breaker.state).toBe("closed");
  });

  it("with the only deployment open the answer is a 503 that says the circuit is open", async () => {
    const { router } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 0, circuit_breaker: cb } },
      { a: fail("server_error") },
    );
    await failure(route(router, "main"));
    await failure(route(router, "main"));
    const f = await failure(route(router, "main"));
    expect([f.status, f.code]).toEqual([503, "no_healthy_deployment"]);
    expect(f.message).toMatch(/circuit open/);
  });

  it("while the half-open probe is out, other requests get a 503 that says so", async () => {
    let now = 0;
    const { router, stubs } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 0, circuit_breaker: cb } },
      { a: fail("server_error") },
      { now: () => now },
    );
    await failure(route(router, "main"));
    await failure(route(router, "main"));
    now += 10_000;
    stubs.a!.script = async (_n, ctx) => {
      await wait(30, ctx.signal);
      return ok("a");
    };
    const probe = route(router, "main");
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(503);
    expect(f.message).toMatch(/circuit open/);
    expect(answer(await probe)).toBe("a");
    expect(answer(await route(router, "main"))).toBe("a");
  });

  it("a request that started before the breaker opened does not spend the half-open probe's slot", async () => {
    let now = 0;
    let release: (() => void) | undefined;
    const { router, stubs } = build(
      { providers: providers("a"), models: { main: { deployments: [{ provider: "a", model: "a" }] } }, router: { retries: 0, circuit_breaker: cb } },
      {
        a: async (n) => {
          if (n === 1) {
            await new Promise<void>((r) => (release = r));
            throw new UpstreamError("server_error", "late failure");
          }
          throw new UpstreamError("server_error", "fail");
        },
      },
      { now: () => now },
    );
    const straggler = failure(route(router, "main")); // in flight while the breaker opens
    await failure(route(router, "main"));
    await failure(route(router, "main"));
    const d = router.group("main")!.deployments[0]!;
    expect(d.breaker.state).toBe("open");
    now += 10_000;
    stubs.a!.script = async (_n, ctx) => {
      await wait(30, ctx.signal);
      return ok("a");
    };
    const probe = route(router, "main");
    // The straggler fails now: it says nothing about the probe, which is still out.
    release!();
    await straggler;
    expect(answer(await probe)).toBe("a");
    expect(d.breaker.state).toBe("closed");
  });
});

describe("retry passes", () => {
  it("a retryable failure earlier in the pass still earns a retry when the last deployment's error is not retryable", async () => {
    // Local server warming up (503), cloud key wrong (401): retrying the local one is worth it.
    const delays: number[] = [];
    const { router, stubs } = build(
      { providers: providers("local", "cloud"), models: { m: { strategy: "priority", deployments: [{ provider: "local", model: "l" }, { provider: "cloud", model: "c" }] } }, router: { retries: 2 } },
      {
        local: async (n) => (n === 1 ? Promise.reject(new UpstreamError("server_error", "loading model", { upstreamStatus: 503 })) : ok("local")),
        cloud: fail("auth", { upstreamStatus: 401 }),
      },
      {
        sleep: async (ms) => {
          delays.push(ms);
        },
      },
    );
    const r = await route(router, "m");
    expect(answer(r)).toBe("local");
    expect(delays).toHaveLength(1);
    expect(r.attempts.map((a) => [a.provider, a.error_class])).toEqual([
      ["local", "server_error"],
      ["cloud", "auth"],
      ["local", null],
    ]);
    // The deployment whose error no retry can fix is not asked again.
    expect(stubs.cloud!.calls).toBe(1);
  });

  it("a deployment that failed for good (auth) is not asked again in later passes", async () => {
    const { router, stubs } = build(
      { providers: providers("a", "b"), models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "a" }, { provider: "b", model: "b" }] } }, router: { retries: 2 } },
      { a: fail("auth", { upstreamStatus: 401 }), b: fail("server_error") },
      { sleep: async () => {} },
    );
    const f = await failure(route(router, "m"));
    expect([stubs.a!.calls, stubs.b!.calls]).toEqual([1, 3]);
    expect(f.status).toBe(502);
  });

  it("the failure of a request that went down the fallback chain records how deep it went", async () => {
    const { router } = build(
      {
        providers: providers("a", "f"),
        models: { main: { deployments: [{ provider: "a", model: "a" }], fallbacks: ["fb"] }, fb: { deployments: [{ provider: "f", model: "f" }] } },
        router: { retries: 0 },
      },
      { a: fail("server_error"), f: fail("server_error") },
    );
    const f = await failure(route(router, "main"));
    expect(f.fallbackDepth).toBe(1);
    expect(f.attempts.map((a) => a.provider)).toEqual(["a", "f"]);
  });

  it("fallback cycles are followed once", async () => {
    const { router, stubs } = build(
      {
        providers: providers("a", "b"),
        models: { x: { deployments: [{ provider: "a", model: "a" }], fallbacks: ["y"] }, y: { deployments: [{ provider: "b", model: "b" }], fallbacks: ["x", "y", "missing"] } },
        router: { retries: 0 },
      },
      { a: fail("server_error"), b: fail("server_error") },
    );
    await failure(route(router, "x"));
    expect([stubs.a!.calls, stubs.b!.calls]).toEqual([1, 1]);
  });
});

describe("streams", () => {
  async function* slowChunks(firstDelayMs: number, signal: AbortSignal, who: string): AsyncGenerator<Record<string, unknown>[]> {
    await wait(firstDelayMs, signal);
    yield [{ id: who, object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: who } }] }];
  }
  const streamRoute = (router: Router, model: string) =>
    router.route({ operation: "chat", model, body: { model, messages: [{ role: "user", content: "hi" }], stream: true }, stream: true, signal: new AbortController().signal });

  it("first_byte_timeout_s also covers an upstream that sends its headers at once but no chunk", async () => {
    let aSignal: AbortSignal | undefined;
    const { router } = build(
      {
        providers: providers("a", "b"),
        models: { m: { strategy: "priority", deployments: [{ provider: "a", model: "a", first_byte_timeout_s: 0.05 }, { provider: "b", model: "b" }] } },
        router: { retries: 0 },
      },
      {
        a: async (_n, ctx) => {
          aSignal = ctx.signal;
          return { kind: "stream", batches: slowChunks(5000, ctx.signal, "a") };
        },
        b: async (_n, ctx) => ({ kind: "stream", batches: slowChunks(1, ctx.signal, "b") }),
      },
    );
    const t0 = performance.now();
    const r = await streamRoute(router, "m");
    expect(performance.now() - t0).toBeLessThan(1000);
    if (r.kind !== "stream") throw new Error("expected a stream");
    expect(r.first?.[0]?.id).toBe("b");
    expect(r.attempts.map((a) => [a.provider, a.error_class])).toEqual([
      ["a", "first_byte_timeout"],
      ["b", null],
    ]);
    expect(aSignal?.aborted).toBe(true); // the abandoned upstream was cancelled
    r.finish({ usage: null });
    expect(router.group("m")!.deployments.map((d) => d.inFlight)).toEqual([0, 0]);
  });

  it("an error after the first chunk reaches the caller from `rest`, and finish() releases the deployment with a failure", async () => {
    async function* broken(): AsyncGenerator<Record<string, unknown>[]> {
      yield [{ id: "x", choices: [{ index: 0, delta: { content: "partial" } }] }];
      throw new UpstreamError("reset", "dropped");
    }
    const { router } = build({ providers: providers("a"), models: { m: { deployments: [{ provider: "a", model: "a" }] } } }, { a: async () => ({ kind: "stream", batches: broken() }) });
    const r = await streamRoute(router, "m");
    if (r.kind !== "stream") throw new Error("expected a stream");
    expect(r.first).toBeDefined();
    const err = await r.rest.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).errorClass).toBe("reset");
    r.finish({ usage: null, error: err as UpstreamError });
    r.finish({ usage: null, error: err as UpstreamError }); // twice is harmless
    const d = router.group("m")!.deployments[0]!;
    expect([d.inFlight, d.provider.inFlight, d.failures]).toEqual([0, 0, 1]);
  });
});

describe("429 when every deployment is at its limit", () => {
  it("Retry-After is the soonest a deployment anywhere in the fallback chain frees up", async () => {
    let now = 2_000_000;
    const { router } = build(
      {
        providers: providers("a", "f"),
        models: { main: { deployments: [{ provider: "a", model: "a", rpm: 1 }], fallbacks: ["fb"] }, fb: { deployments: [{ provider: "f", model: "f", rpm: 1 }] } },
      },
      {},
      { now: () => now },
    );
    expect(answer(await route(router, "main"))).toBe("a"); // a full until t0+60s
    now += 40_000;
    expect(answer(await route(router, "main"))).toBe("f"); // f full until t0+100s
    now += 5_000;
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(429);
    expect(f.retryAfterMs).toBe(15_000); // a frees first
    now += 15_000;
    expect(answer(await route(router, "main"))).toBe("a");
    const g = await failure(route(router, "main"));
    expect(g.retryAfterMs).toBe(40_000); // now f frees first (t0+100s)
  });
});

describe("panic mode (too few deployments with a closed breaker)", () => {
  const breaker = { consecutive_failures: 3, cooldown_s: 10, min_requests: 1000, half_open_probes: 1 };
  const twoOf = (extra: Record<string, unknown> = {}) => ({
    providers: providers("a", "b"),
    models: { main: { strategy: "priority", deployments: [{ provider: "a", model: "a" }, { provider: "b", model: "b" }] } },
    router: { retries: 2, circuit_breaker: breaker, ...extra },
  });
  const noSleep = async (): Promise<void> => {};

  it("ignores open breakers once every deployment is open, retries flaky ones, and reports entering and leaving once each", async () => {
    let now = 0;
    const changes: [string, boolean][] = [];
    // Both upstreams fail three calls out of four: each breaker opens after 3 failures in a row.
    const flaky: Script = async (n) => {
      if (n % 4 !== 0) throw new UpstreamError("server_error", "injected 500", { upstreamStatus: 500 });
      return ok("flaky");
    };
    const { router, stubs } = build(twoOf(), { a: flaky, b: flaky }, { now: () => now, sleep: noSleep, observer: { onPanicChange: (g, p) => changes.push([g, p]) } });
    const outcomes: string[] = [];
    for (let i = 0; i < 30; i++) {
      try {
        const r = await route(router, "main");
        outcomes.push(r.panic ? "ok-panic" : "ok");
      } catch (err) {
        outcomes.push(said(err as RouteFailure).status === 503 ? "503" : "err");
      }
    }
    const [a, b] = router.group("main")!.deployments;
    expect([a!.breaker.state, b!.breaker.state]).toEqual(["open", "open"]);
    expect(router.groupHealth(router.group("main")!)).toEqual({ enabled: 2, eligible: 0, panic: true });
    // Without panic every request after both breakers opened would be a 503; in panic most are served.
    expect(outcomes.filter((o) => o === "ok-panic").length).toBeGreaterThanOrEqual(15);
    expect(stubs.a!.calls + stubs.b!.calls).toBeLessThanOrEqual(30 * 6);
    expect(changes).toEqual([["main", true]]);

    // The upstreams recover; after the cooldown the half-open probes close the breakers and panic ends.
    stubs.a!.script = async () => ok("a");
    stubs.b!.script = async () => ok("b");
    now += 10_000;
    for (let i = 0; i < 4; i++) await route(router, "main");
    // a (first by priority) closed on its probe's success; b waits half-open for a probe of its own.
    expect([a!.breaker.state, b!.breaker.state]).toEqual(["closed", "half_open"]);
    expect(changes).toEqual([
      ["main", true],
      ["main", false],
    ]);
    expect((await route(router, "main")).panic).toBe(false);
  });

  it("a dead group costs one call per deployment per request and answers 503 with the reason", async () => {
    const { router, stubs } = build(twoOf(), { a: fail("server_error", { upstreamStatus: 500 }), b: fail("connect") }, { sleep: noSleep });
    for (let i = 0; i < 3; i++) await failure(route(router, "main"));
    const before = stubs.a!.calls + stubs.b!.calls;
    for (let i = 0; i < 10; i++) {
      const f = await failure(route(router, "main"));
      expect([f.status, f.code, f.panic]).toEqual([503, "no_healthy_deployment", true]);
      expect(f.message).toMatch(/2 of 2 have their circuit breaker open.*panic/);
      expect(f.attempts.map((x) => x.provider).sort()).toEqual(["a", "b"]);
    }
    expect(stubs.a!.calls + stubs.b!.calls - before).toBe(20);
  });

  it("in panic a dead group still goes down its fallbacks chain after one call per deployment", async () => {
    const cfg = twoOf();
    const { router, stubs } = build(
      {
        ...cfg,
        providers: providers("a", "b", "backup"),
        models: { ...cfg.models, main: { ...cfg.models.main, fallbacks: ["spare"] }, spare: { deployments: [{ provider: "backup", model: "s" }] } },
      },
      { a: fail("server_error"), b: fail("server_error") },
      { sleep: noSleep },
    );
    for (let i = 0; i < 4; i++) await route(router, "main");
    const before = stubs.a!.calls + stubs.b!.calls;
    const r = await route(router, "main");
    expect([answer(r), r.isFallback, r.fallbackDepth]).toEqual(["backup", true, 1]);
    expect(stubs.a!.calls + stubs.b!.calls - before).toBe(2);
  });

  it("operator-disabled deployments stay out, and one open breaker of two is no panic", async () => {
    const { router, stubs } = build(twoOf(), { a: fail("server_error"), b: async () => ok("b") }, { sleep: noSleep });
    for (let i = 0; i < 5; i++) expect(answer(await route(router, "main"))).toBe("b");
    expect(router.group("main")!.deployments[0]!.breaker.state).toBe("open");
    expect(router.groupHealth(router.group("main")!).panic).toBe(false);
    const aCalls = stubs.a!.calls;
    for (let i = 0; i < 5; i++) expect((await route(router, "main")).attempts.map((x) => x.provider)).toEqual(["b"]);
    expect(stubs.a!.calls).toBe(aCalls);
    // b disabled by the operator: a alone is enabled and open, so the group panics, but b is never called.
    router.registry.setEnabled("b", false);
    expect(router.groupHealth(router.group("main")!)).toEqual({ enabled: 1, eligible: 0, panic: true });
    const bCalls = stubs.b!.calls;
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(503);
    expect(stubs.b!.calls).toBe(bCalls);
    expect(stubs.a!.calls).toBe(aCalls + 1);
  });

  it("panic_threshold 0 turns panic off", async () => {
    const { router, stubs } = build(twoOf({ circuit_breaker: { ...breaker, panic_threshold: 0 } }), { a: fail("server_error"), b: fail("server_error") }, { sleep: noSleep });
    for (let i = 0; i < 3; i++) await failure(route(router, "main"));
    const calls = stubs.a!.calls + stubs.b!.calls;
    const f = await failure(route(router, "main"));
    expect([f.status, f.panic]).toEqual([503, false]);
    expect(f.message).toMatch(/2 circuit open/);
    expect(stubs.a!.calls + stubs.b!.calls).toBe(calls);
  });

  it("an error raised inside labgate is a 500, never retried and never counted against the upstream", async () => {
    const { router, stubs } = build(twoOf(), {
      a: async () => {
        throw new RangeError("Maximum call stack size exceeded");
      },
    });
    for (let i = 0; i < 5; i++) {
      const f = await failure(route(router, "main"));
      expect([f.status, f.errorClass, f.type, f.code]).toEqual([500, "internal", "api_error", "internal_error"]);
    }
    expect(stubs.a!.calls).toBe(5);
    expect(stubs.b!.calls).toBe(0);
    expect(router.group("main")!.deployments[0]!.breaker.state).toBe("closed");
  });

  it("router.total_timeout_s bounds a request across its retries", async () => {
    let sleptMs = 0;
    const { router, stubs } = build(twoOf({ total_timeout_s: 1, retries: 5, retry_backoff_ms: 400, retry_backoff_max_ms: 400, circuit_breaker: { consecutive_failures: 100 } }), {
      a: fail("server_error"),
      b: fail("server_error"),
    }, {
      sleep: async (ms) => {
        sleptMs += ms;
        await new Promise((r) => setTimeout(r, ms));
      },
    });
    const f = await failure(route(router, "main"));
    expect(f.status).toBe(502);
    // 5 retries of 200-400 ms would sleep over a second; the deadline stops them before.
    expect(sleptMs).toBeLessThan(1000);
    expect(stubs.a!.calls).toBeLessThan(6);
  });
});
