// Budgets on their own, with an injected clock: spend per tier and provider per day,
// cost per 1k tokens judged once enough tokens were seen, each crossing told once,
// block_overflow only when asked for, and a new day that starts from zero.
import { describe, expect, it } from "vitest";
import type { RequestOutcome } from "../../gateway/completion/outcome.ts";
import { budgetsSchema } from "../../gateway/config/schema.ts";
import { BudgetBook, type BudgetStatus } from "../../gateway/telemetry/budgets.ts";
import { busyCostOf } from "../../gateway/store/cost.ts";

const outcome = (o: Partial<RequestOutcome>): RequestOutcome =>
  ({ provider: "cloud", tier: "premium", costUsd: 0.01, usage: { prompt_tokens: 100, completion_tokens: 100, total_tokens: 200 }, ...o }) as RequestOutcome;

describe("budgets", () => {
  it("tells each crossing once per day, and a new day starts again from zero", () => {
    let now = new Date(2026, 11, 1, 23, 0).getTime();
    const crossed: BudgetStatus[] = [];
    const book = new BudgetBook({
      config: budgetsSchema.parse({ tiers: { premium: { daily_usd: 0.05, max_usd_per_1k_tokens: 0.04 } }, providers: { cloud: { daily_usd: 0.035 } }, on_exceed: "block_overflow" }),
      now: () => now,
      onCross: (s) => crossed.push(s),
    });
    for (let i = 0; i < 3; i++) book.observe(outcome({}));
    expect(book.blockOverflow).toBe(false);
    book.observe(outcome({})); // 0.04 > 0.035: the provider's daily ceiling
    expect(crossed.map((s) => `${s.kind}:${s.name}:${s.measure}`)).toEqual(["provider:cloud:daily_usd"]);
    expect(book.blockOverflow).toBe(true);
    for (let i = 0; i < 2; i++) book.observe(outcome({})); // 1,000 tokens at $0.05/1k > $0.04; then 0.06 > 0.05 a day
    expect(crossed.map((s) => `${s.kind}:${s.name}:${s.measure}`)).toEqual(["provider:cloud:daily_usd", "tier:premium:usd_per_1k_tokens", "tier:premium:daily_usd"]);
    const rate = book.statuses().find((s) => s.measure === "usd_per_1k_tokens")!;
    expect(rate.value).toBeCloseTo(0.05, 10); // $0.01 per 200 tokens
    // Midnight: the day's spend and crossings start again, and the cloud opens.
    now = new Date(2026, 11, 2, 0, 1).getTime();
    expect(book.blockOverflow).toBe(false);
    expect(book.statuses().every((s) => !s.exceeded)).toBe(true);
    book.observe(outcome({}));
    expect(crossed).toHaveLength(3);
  });

  it("cost per 1k tokens is judged only past 1,000 tokens; alert does not block", () => {
    const crossed: BudgetStatus[] = [];
    const book = new BudgetBook({ config: budgetsSchema.parse({ tiers: { standard: { max_usd_per_1k_tokens: 0.001 } } }), onCross: (s) => crossed.push(s) });
    book.observe(outcome({ tier: "standard", costUsd: 0.01, usage: { prompt_tokens: 400, completion_tokens: 400, total_tokens: 800 } }));
    expect(crossed).toEqual([]);
    book.observe(outcome({ tier: "standard", costUsd: 0.01, usage: { prompt_tokens: 400, completion_tokens: 400, total_tokens: 800 } }));
    expect(crossed.map((s) => s.measure)).toEqual(["usd_per_1k_tokens"]);
    expect(book.blockOverflow).toBe(false);
  });

  it("after a restart, today's spend from the log counts and what was crossed is not told again", () => {
    const crossed: BudgetStatus[] = [];
    const book = new BudgetBook({ config: budgetsSchema.parse({ providers: { cloud: { daily_usd: 1 } }, on_exceed: "block_overflow" }), onCross: (s) => crossed.push(s) });
    book.seed([{ tier: null, provider: "cloud", cost: 1.5, tokens: 1000 }]);
    expect(book.blockOverflow).toBe(true);
    book.observe(outcome({}));
    expect(crossed).toEqual([]);
  });

  it("hourly_cost: a request is charged its busy time, shared with the requests it ran alongside", () => {
    expect(busyCostOf(3.6, 1000, 1)).toBeCloseTo(0.001, 12);
    expect(busyCostOf(3.6, 1000, 4)).toBeCloseTo(0.00025, 12);
    expect(busyCostOf(3.6, 1000, 0)).toBeCloseTo(0.001, 12);
  });
});
