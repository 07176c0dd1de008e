// Each strategy orders a group's eligible deployments, best first.
import { describe, expect, it } from "vitest";
import type { DeploymentConfig, StrategyName } from "../../gateway/config/schema.ts";
import { configSchema } from "../../gateway/config/schema.ts";
import { DeploymentRuntime, ProviderRuntime } from "../../gateway/router/runtime.ts";
import { orderByStrategy, weightedShuffle } from "../../gateway/router/strategies.ts";

const breaker = configSchema.parse({}).router.circuit_breaker;

function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function deployments(configs: Partial<DeploymentConfig>[], now?: () => number): DeploymentRuntime[] {
  return configs.map((c, index) => {
    const name = c.provider ?? `p${index}`;
    const provider = new ProviderRuntime({ name, config: { type: "openai-compatible" }, unavailableReason: "unit test", enabled: true, now });
    return new DeploymentRuntime({ group: "g", index, config: { model: `m${index}`, ...c, provider: name }, provider, breaker, now });
  });
}

const names = (ds: DeploymentRuntime[]): string[] => ds.map((d) => d.provider.name);

function firstPickShares(strategy: StrategyName, ds: DeploymentRuntime[], n: number, random: () => number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const first = orderByStrategy(strategy, ds, random)[0]!.provider.name;
    counts[first] = (counts[first] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
}

describe("weighted", () => {
  const ds = deployments([
    { provider: "openai", weight: 60 },
    { provider: "azure", weight: 25 },
    { provider: "anthropic", weight: 15 },
  ]);

  it("the first pick follows the weights", () => {
    const shares = firstPickShares("weighted", ds, 20_000, seeded(42));
    expect(shares.openai).toBeCloseTo(0.6, 1);
    expect(shares.azure).toBeCloseTo(0.25, 1);
    expect(shares.anthropic).toBeCloseTo(0.15, 1);
    expect(Math.abs(shares.openai! - 0.6)).toBeLessThan(0.015);
    expect(Math.abs(shares.azure! - 0.25)).toBeLessThan(0.015);
    expect(Math.abs(shares.anthropic! - 0.15)).toBeLessThan(0.015);
  });

  it("the failover order is every deployment once, the rest weighted too", () => {
    const random = seeded(3);
    let azureSecondAfterOpenai = 0;
    let openaiFirst = 0;
    for (let i = 0; i < 10_000; i++) {
      const order = names(weightedShuffle(ds, random));
      expect([...order].sort()).toEqual(["anthropic", "azure", "openai"]);
      if (order[0] === "openai") {
        openaiFirst++;
        if (order[1] === "azure") azureSecondAfterOpenai++;
      }
    }
    // Once openai is out, azure vs anthropic is 25:15.
    expect(azureSecondAfterOpenai / openaiFirst).toBeGreaterThan(0.58);
    expect(azureSecondAfterOpenai / openaiFirst).toBeLessThan(0.67);
  });

  it("weight 0 is never the first pick while others have weight, but stays in the failover order", () => {
    const zero = deployments([{ provider: "spare", weight: 0 }, { provider: "main", weight: 1 }]);
    const random = seeded(9);
    for (let i = 0; i < 1000; i++) expect(names(orderByStrategy("weighted", zero, random))).toEqual(["main", "spare"]);
  });

  it("all weights 0: spread evenly", () => {
    const zero = deployments([{ weight: 0 }, { weight: 0 }]);
    const shares = firstPickShares("weighted", zero, 4000, seeded(5));
    expect(shares.p0).toBeGreaterThan(0.45);
    expect(shares.p1).toBeGreaterThan(0.45);
  });

  it("a missing weight counts as 1", () => {
    const ds2 = deployments([{ provider: "a" }, { provider: "b", weight: 3 }]);
    const shares = firstPickShares("weighted", ds2, 8000, seeded(11));
    expect(shares.a).toBeGreaterThan(0.22);
    expect(shares.a).toBeLessThan(0.28);
  });
});

describe("priority", () => {
  it("keeps the listed order", () => {
    const ds = deployments([{ provider: "first" }, { provider: "second" }, { provider: "third" }]);
    for (let i = 0; i < 50; i++) expect(names(orderByStrategy("priority", ds, Math.random))).toEqual(["first", "second", "third"]);
  });
});

describe("least-busy", () => {
  it("fewest requests in flight first; ties shared", () => {
    const ds = deployments([{ provider: "a" }, { provider: "b" }, { provider: "c" }]);
    ds[0]!.inFlight = 3;
    ds[1]!.inFlight = 1;
    ds[2]!.inFlight = 1;
    const seen = new Set<string>();
    const random = seeded(1);
    for (let i = 0; i < 200; i++) {
      const order = names(orderByStrategy("least-busy", ds, random));
      expect(order[2]).toBe("a");
      seen.add(order[0]!);
    }
    expect(seen).toEqual(new Set(["b", "c"]));
  });
});

describe("latency", () => {
  it("lowest EWMA time-to-first-byte first; unmeasured deployments first so they get measured", () => {
    const ds = deployments([{ provider: "slow" }, { provider: "fast" }, { provider: "new" }]);
    for (let i = 0; i < 5; i++) {
      ds[0]!.observeTtfb(400);
      ds[1]!.observeTtfb(20);
    }
    expect(names(orderByStrategy("latency", ds, Math.random))).toEqual(["new", "fast", "slow"]);
    ds[2]!.observeTtfb(100);
    expect(names(orderByStrategy("latency", ds, Math.random))).toEqual(["fast", "new", "slow"]);
  });

  it("the EWMA follows a deployment that slows down", () => {
    const [a, b] = deployments([{ provider: "a" }, { provider: "b" }]);
    a!.observeTtfb(10);
    b!.observeTtfb(50);
    expect(names(orderByStrategy("latency", [a!, b!], Math.random))[0]).toBe("a");
    for (let i = 0; i < 20; i++) a!.observeTtfb(500);
    expect(a!.ewmaTtfbMs).toBeGreaterThan(400);
    expect(names(orderByStrategy("latency", [a!, b!], Math.random))[0]).toBe("b");
  });
});

describe("usage", () => {
  it("most RPM headroom first, counting the provider's limit too", () => {
    const now = 1_000_000;
    const ds = deployments([{ provider: "a", rpm: 10 }, { provider: "b", rpm: 100 }, { provider: "c", rpm: 100 }], () => now);
    for (let i = 0; i < 2; i++) ds[0]!.limiter.recordRequest(); // a: 80% left
    for (let i = 0; i < 50; i++) ds[1]!.limiter.recordRequest(); // b: 50% left
    for (let i = 0; i < 10; i++) ds[2]!.limiter.recordRequest(); // c: 90% left
    expect(names(orderByStrategy("usage", ds, Math.random))).toEqual(["c", "a", "b"]);
  });

  it("an unlimited deployment has full headroom", () => {
    const now = 0;
    const ds = deployments([{ provider: "limited", rpm: 10 }, { provider: "free" }], () => now);
    ds[0]!.limiter.recordRequest();
    expect(names(orderByStrategy("usage", ds, Math.random))).toEqual(["free", "limited"]);
  });
});

describe("cost", () => {
  it("cheapest first; an unpriced (local) deployment counts as free", () => {
    const ds = deployments([
      { provider: "premium", price: { input_per_1m: 10, output_per_1m: 30 } },
      { provider: "standard", price: { input_per_1m: 0.5, output_per_1m: 1.5 } },
      { provider: "local" },
    ]);
    for (let i = 0; i < 20; i++) expect(names(orderByStrategy("cost", ds, Math.random))).toEqual(["local", "standard", "premium"]);
  });
});

describe("every strategy", () => {
  it("returns each candidate exactly once", () => {
    const ds = deployments([{ provider: "a", weight: 2, rpm: 5 }, { provider: "b" }, { provider: "c", price: { input_per_1m: 1, output_per_1m: 1 } }]);
    for (const s of ["weighted", "least-busy", "latency", "usage", "cost", "priority"] as const) {
      expect(names(orderByStrategy(s, ds, Math.random)).sort()).toEqual(["a", "b", "c"]);
    }
  });
});
