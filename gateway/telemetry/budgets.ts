// Budgets: per route tier a ceiling in USD per 1k tokens and per day in USD, per
// provider a ceiling per day. Spend is counted from request outcomes (and, after
// a restart, today's rows of the request log). A ceiling crossed is said once: in
// the server log, as a live event, and in /metrics (and the readiness gate reads
// the same figures); with `on_exceed: block_overflow`, cloud providers take no
// more traffic for the rest of the day while local deployments keep serving.
import { Gauge, type Registry } from "prom-client";
import type { RequestOutcome } from "../completion/outcome.ts";
import type { BudgetsConfig } from "../config/schema.ts";

/** Cloud providers: what block_overflow stops (the lab's own servers keep serving). */
export const CLOUD_PROVIDER_TYPES: ReadonlySet<string> = new Set(["openai", "azure", "anthropic"]);

/** Cost per 1k tokens is judged once the tier has seen this many tokens today (one tiny request says little). */
const MIN_TOKENS_FOR_RATE = 1000;

export interface BudgetStatus {
  kind: "tier" | "provider";
  name: string;
  measure: "daily_usd" | "usd_per_1k_tokens";
  limit: number;
  value: number | null;
  exceeded: boolean;
}

interface Totals {
  spend: number;
  tokens: number;
}

export interface BudgetBookOptions {
  config: BudgetsConfig;
  now?: () => number;
  /** Told once per ceiling per day, when it is crossed. */
  onCross?: (s: BudgetStatus) => void;
}

/** The local calendar day of a time (budgets are daily, in the lab's own time zone). */
function dayOf(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** Midnight (local) of the day of `ms`. */
export function startOfDay(ms: number): number {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

export class BudgetBook {
  private readonly cfg: BudgetsConfig;
  private readonly now: () => number;
  private readonly onCross: (s: BudgetStatus) => void;
  private day: string;
  private byTier = new Map<string, Totals>();
  private byProvider = new Map<string, Totals>();
  private crossed = new Set<string>();
  /** Some ceiling is crossed today (kept up to date by observe/seed: the router asks on every request). */
  private anyCrossed = false;
  private readonly hasBudgets: boolean;

  constructor(opts: BudgetBookOptions) {
    this.cfg = opts.config;
    this.now = opts.now ?? Date.now;
    this.onCross = opts.onCross ?? (() => {});
    this.day = dayOf(this.now());
    this.hasBudgets = Object.keys(this.cfg.tiers).length > 0 || Object.keys(this.cfg.providers).length > 0;
  }

  get configured(): boolean {
    return Object.keys(this.cfg.tiers).length > 0 || Object.keys(this.cfg.providers).length > 0;
  }

  /** Today's spend so far, from the request log after a restart (before any outcome is observed). */
  seed(rows: { tier: string | null; provider: string | null; cost: number; tokens: number }[]): void {
    for (const r of rows) this.add(r.tier, r.provider, r.cost, r.tokens);
    for (const s of this.statuses()) if (s.exceeded) this.crossed.add(key(s)); // crossed before the restart: said then
    this.anyCrossed = this.crossed.size > 0;
  }

  observe(o: RequestOutcome): void {
    // Nothing configured, nothing to count (this runs for every request).
    if (!this.hasBudgets || (!o.costUsd && !o.usage)) return;
    this.rollDay();
    this.add(o.tier, o.provider, o.costUsd ?? 0, o.usage ? o.usage.prompt_tokens + o.usage.completion_tokens : 0);
    if (!this.configured) return;
    for (const s of this.statuses()) {
      if (!s.exceeded || this.crossed.has(key(s))) continue;
      this.crossed.add(key(s));
      this.anyCrossed = true;
      this.onCross(s);
    }
  }

  /** Every configured ceiling with today's figure. */
  statuses(): BudgetStatus[] {
    this.rollDay();
    const out: BudgetStatus[] = [];
    for (const [tier, b] of Object.entries(this.cfg.tiers)) {
      const t = this.byTier.get(tier) ?? { spend: 0, tokens: 0 };
      if (b.daily_usd !== undefined) out.push({ kind: "tier", name: tier, measure: "daily_usd", limit: b.daily_usd, value: t.spend, exceeded: t.spend > b.daily_usd });
      if (b.max_usd_per_1k_tokens !== undefined) {
        const rate = t.tokens > 0 ? (t.spend / t.tokens) * 1000 : null;
        const judged = rate !== null && t.tokens >= MIN_TOKENS_FOR_RATE;
        out.push({ kind: "tier", name: tier, measure: "usd_per_1k_tokens", limit: b.max_usd_per_1k_tokens, value: rate, exceeded: judged && rate > b.max_usd_per_1k_tokens });
      }
    }
    for (const [provider, b] of Object.entries(this.cfg.providers)) {
      const p = this.byProvider.get(provider) ?? { spend: 0, tokens: 0 };
      out.push({ kind: "provider", name: provider, measure: "daily_usd", limit: b.daily_usd, value: p.spend, exceeded: p.spend > b.daily_usd });
    }
    return out;
  }

  /** With on_exceed: block_overflow, whether cloud providers are closed for the rest of the day. */
  get blockOverflow(): boolean {
    if (this.cfg.on_exceed !== "block_overflow" || !this.anyCrossed) return false;
    this.rollDay(); // a new day opens them again
    return this.anyCrossed;
  }

  /** Spend and tokens today by tier (for the gate and the dashboard). */
  tierTotals(): Map<string, Totals> {
    this.rollDay();
    return new Map(this.byTier);
  }

  private add(tier: string | null, provider: string | null, cost: number, tokens: number): void {
    const t = (m: Map<string, Totals>, k: string): Totals => {
      let v = m.get(k);
      if (!v) m.set(k, (v = { spend: 0, tokens: 0 }));
      return v;
    };
    if (tier) {
      const x = t(this.byTier, tier);
      x.spend += cost;
      x.tokens += tokens;
    }
    if (provider) {
      const x = t(this.byProvider, provider);
      x.spend += cost;
      x.tokens += tokens;
    }
  }

  private rollDay(): void {
    const today = dayOf(this.now());
    if (today === this.day) return;
    this.day = today;
    this.byTier = new Map();
    this.byProvider = new Map();
    this.crossed = new Set();
    this.anyCrossed = false;
  }
}

const key = (s: BudgetStatus): string => `${s.kind}:${s.name}:${s.measure}`;

/** budget_* gauges, read at scrape time. */
export function registerBudgetMetrics(registry: Registry, book: BudgetBook): void {
  const r = [registry];
  new Gauge({
    name: "budget_value",
    help: "Today's figure of each configured budget (USD, or USD per 1k tokens), by kind, name and measure",
    labelNames: ["kind", "name", "measure"],
    registers: r,
    collect() {
      this.reset();
      for (const s of book.statuses()) if (s.value !== null) this.set({ kind: s.kind, name: s.name, measure: s.measure }, s.value);
    },
  });
  new Gauge({
    name: "budget_limit",
    help: "Each configured budget's ceiling (USD, or USD per 1k tokens)",
    labelNames: ["kind", "name", "measure"],
    registers: r,
    collect() {
      this.reset();
      for (const s of book.statuses()) this.set({ kind: s.kind, name: s.name, measure: s.measure }, s.limit);
    },
  });
  new Gauge({
    name: "budget_exceeded",
    help: "1 when a budget's ceiling is crossed today",
    labelNames: ["kind", "name", "measure"],
    registers: r,
    collect() {
      this.reset();
      for (const s of book.statuses()) this.set({ kind: s.kind, name: s.name, measure: s.measure }, s.exceeded ? 1 : 0);
    },
  });
}
