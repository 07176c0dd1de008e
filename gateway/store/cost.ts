// One pricing function for every request, streamed or not: the same usage gives the same cost.
import type { Price } from "../config/schema.ts";
import type { Usage } from "../providers/types.ts";

/** USD for this usage at this price; null when the deployment has no price (local models count as 0 only if priced so). */
export function costOf(usage: Usage | null, price: Price | undefined): number | null {
  if (!usage) return null;
  if (!price) return 0;
  return (usage.prompt_tokens * price.input_per_1m + usage.completion_tokens * price.output_per_1m) / 1_000_000;
}

/**
 * A local deployment priced by its hardware (`hourly_cost`): each request is charged
 * its share of the time the hardware was busy, its own duration divided among the
 * requests it ran alongside.
 */
export function busyCostOf(hourlyUsd: number, busyMs: number, concurrency: number): number {
  return (hourlyUsd * (busyMs / 3_600_000)) / Math.max(1, concurrency);
}
