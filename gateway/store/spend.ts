// Spend and tokens since a time, by provider (and tier when the log has it): what
// the budgets count again after a restart.
import type { Db } from "./db.ts";

export interface SpendRow {
  tier: string | null;
  provider: string | null;
  cost: number;
  tokens: number;
}

export function todaysSpend(db: Db, sinceMs: number): SpendRow[] {
  const hasTier = (db.prepare("SELECT 1 FROM pragma_table_info('request_log') WHERE name = 'tier'").get() as unknown) !== undefined;
  const tier = hasTier ? "tier" : "NULL";
  return db
    .prepare(
      `SELECT ${tier} AS tier, provider, COALESCE(SUM(cost_usd), 0) AS cost,
              COALESCE(SUM(COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0)), 0) AS tokens
       FROM request_log WHERE ts >= ? GROUP BY ${hasTier ? "tier, " : ""}provider`,
    )
    .all(sinceMs) as SpendRow[];
}
