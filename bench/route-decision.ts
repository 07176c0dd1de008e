// Micro-benchmark of the routing decision alone: one model group of 50
// deployments on one provider, for every strategy.
//   order — orderByStrategy() over the 50 deployments (the candidate ordering)
//   pick  — the router's attempt plan up to its first candidate: eligibility of
//           all 50 (provider, breaker, limits, saturation) + ordering; what route() does before calling an adapter
//   route — Router.route() end to end with a no-op adapter answering at once
//           (the decision + attempt bookkeeping: timers, abort wiring, breaker, limiter, observer)
// Timed per call with process.hrtime.bigint(); bounded by iterations and time.
import { fileURLToPath } from "node:url";
import { parseConfigText } from "../gateway/config/load.ts";
import { STRATEGIES, type StrategyName } from "../gateway/config/schema.ts";
import type { CompletionResult, ProviderAdapter } from "../gateway/providers/types.ts";
import { ProviderRegistry } from "../gateway/providers/registry.ts";
import { Router } from "../gateway/router/router.ts";
import type { DeploymentRuntime } from "../gateway/router/runtime.ts";
import { ProviderRuntime } from "../gateway/router/runtime.ts";
import { orderByStrategy } from "../gateway/router/strategies.ts";
import { quantile } from "./lib/load.ts";
import { fixed, int, table, verdict } from "./lib/table.ts";

export const DEPLOYMENTS = 50;
/** p99 of one routing decision, µs. */
export const GOAL_P99_US = 50;

export interface DecisionStat {
  p50Us: number;
  p99Us: number;
  meanUs: number;
  n: number;
}

export interface StrategyResult {
  strategy: StrategyName;
  order: DecisionStat;
  pick?: DecisionStat;
  route?: DecisionStat;
}

export interface RouteDecisionReport {
  deployments: number;
  results: StrategyResult[];
  pickAvailable: boolean;
}

function configYaml(): string {
  const lines = ["providers:", "  p:", "    type: openai-compatible", "    base_url: http://127.0.0.1:9", "models:"];
  for (const s of STRATEGIES) {
    lines.push(`  g-${s}:`, `    strategy: ${s}`, "    deployments:");
    for (let i = 0; i < DEPLOYMENTS; i++) {
      lines.push(
        `      - provider: p`,
        `        model: m${i}`,
        `        weight: ${1 + (i % 7)}`,
        `        price: { input_per_1m: ${(i % 11) * 0.5}, output_per_1m: ${(i % 5) * 1.5} }`,
        `        rpm: 100000000`,
        `        tpm: 1000000000`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

const ANSWER: CompletionResult = {
  kind: "json",
  body: { choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: "ok" } }] },
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
};

function noopAdapter(): ProviderAdapter {
  return {
    name: "p",
    type: "openai-compatible",
    chat: async () => ANSWER,
    completions: async () => ANSWER,
    embeddings: async () => ({ body: {}, usage: null }),
    health: async () => ({ ok: true, detail: "ok", latencyMs: 0 }),
    close: async () => {},
  };
}

/** Times fn per call; warm-up first; stops at `iterations` or `maxMs`, whichever comes first. */
async function timeIt(fn: () => unknown, opts: { iterations: number; warmup: number; maxMs: number; async?: boolean }): Promise<DecisionStat> {
  for (let i = 0; i < opts.warmup; i++) {
    const r = fn();
    if (opts.async) await r;
  }
  const samples = new Float64Array(opts.iterations);
  const deadline = process.hrtime.bigint() + BigInt(opts.maxMs) * 1_000_000n;
  let n = 0;
  for (; n < opts.iterations; n++) {
    const t0 = process.hrtime.bigint();
    const r = fn();
    if (opts.async) await r;
    const t1 = process.hrtime.bigint();
    samples[n] = Number(t1 - t0) / 1000;
    if (t1 > deadline) {
      n++;
      break;
    }
  }
  const s = samples.subarray(0, n).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { p50Us: quantile(s, 0.5), p99Us: quantile(s, 0.99), meanUs: sum / n, n };
}

type PlanFn = (group: string, skip: Map<string, string>) => Generator<{ deployment: DeploymentRuntime }>;

export async function benchRouteDecision(opts: { iterations?: number; maxMsPerCase?: number } = {}): Promise<RouteDecisionReport> {
  const iterations = opts.iterations ?? 20_000;
  const maxMs = opts.maxMsPerCase ?? 1500;
  const parsed = parseConfigText(configYaml(), "route-bench.yaml");
  if (!parsed.ok) throw new Error("route bench config rejected: " + JSON.stringify(parsed.problems));
  const config = parsed.config;
  const provider = new ProviderRuntime({ name: "p", config: config.providers.p!, adapter: noopAdapter(), enabled: true });
  let seed = 42;
  const random = (): number => {
    // deterministic xorshift so runs are comparable
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 4294967296;
  };
  const router = new Router(config, ProviderRegistry.of([provider]), { random });

  // Give the state-based strategies something to sort on.
  for (const d of router.allDeployments()) {
    d.ewmaTtfbMs = d.index % 10 === 0 ? undefined : 5 + random() * 200;
    d.inFlight = Math.floor(random() * 8);
    for (let k = 0; k < d.index % 4; k++) d.limiter.recordRequest();
    d.limiter.recordTokens(1 + Math.floor(random() * 10_000));
  }

  const plan = (router as unknown as { plan?: PlanFn }).plan;
  const pickAvailable = typeof plan === "function";
  const results: StrategyResult[] = [];
  for (const strategy of STRATEGIES) {
    const groupName = `g-${strategy}`;
    const group = router.group(groupName)!;
    const candidates = group.deployments;
    let sink = 0;
    const order = await timeIt(
      () => {
        sink += orderByStrategy(strategy, candidates, random).length;
      },
      { iterations, warmup: 2000, maxMs },
    );
    const r: StrategyResult = { strategy, order };
    if (pickAvailable) {
      r.pick = await timeIt(
        () => {
          const it = plan.call(router, groupName, new Map());
          const first = it.next();
          it.return(undefined);
          if (!first.done) sink += first.value.deployment.index;
        },
        { iterations, warmup: 2000, maxMs },
      );
    }
    const signal = new AbortController().signal;
    const body = { model: groupName, messages: [{ role: "user", content: "hi" }] };
    // route() mutates state (in-flight counts, breakers, limiters); put back the in-flight counts afterwards.
    const inFlight = candidates.map((d) => d.inFlight);
    r.route = await timeIt(() => router.route({ operation: "chat", model: groupName, body, stream: false, signal }), {
      iterations: Math.min(iterations, 10_000),
      warmup: 1000,
      maxMs,
      async: true,
    });
    candidates.forEach((d, i) => (d.inFlight = inFlight[i]!));
    if (sink < 0) console.log(sink); // keep the work observable
    results.push(r);
  }
  return { deployments: DEPLOYMENTS, results, pickAvailable };
}

export function formatRouteDecisionReport(rep: RouteDecisionReport): string {
  const out: string[] = [];
  out.push(`One group of ${rep.deployments} deployments on one provider; µs per decision (p50 / p99).`);
  out.push(
    table(
      ["strategy", "order p50", "order p99", "pick p50", "pick p99", `pick p99 < ${GOAL_P99_US} µs`, "route() p50", "route() p99"],
      rep.results.map((r) => [
        r.strategy,
        fixed(r.order.p50Us, 2),
        fixed(r.order.p99Us, 2),
        r.pick ? fixed(r.pick.p50Us, 2) : "–",
        r.pick ? fixed(r.pick.p99Us, 2) : "–",
        r.pick ? verdict(r.pick.p99Us < GOAL_P99_US) : verdict(r.order.p99Us < GOAL_P99_US) + " (order)",
        r.route ? fixed(r.route.p50Us, 2) : "–",
        r.route ? fixed(r.route.p99Us, 2) : "–",
      ]),
    ),
  );
  const n = rep.results[0]?.order.n ?? 0;
  out.push(`order / pick: ${int(n)} timed calls per strategy; route(): no-op adapter, includes the attempt bookkeeping around the adapter call.`);
  if (!rep.pickAvailable) out.push("pick: Router has no plan() generator any more; only the ordering was timed.");
  return out.join("\n");
}

// Standalone: node bench/route-decision.ts
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(formatRouteDecisionReport(await benchRouteDecision()));
}
