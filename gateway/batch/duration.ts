// Completion windows: "30s", "15m", "2h", "24h", "7d" (the config schema checks the form).
import { DURATION } from "../config/schema.ts";

const UNIT_S = { s: 1, m: 60, h: 3600, d: 86400 } as const;

/** Seconds in a completion window, or undefined when it is not one. */
export function windowSeconds(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  const unit = text.at(-1) as keyof typeof UNIT_S;
  return Number(text.slice(0, -1)) * UNIT_S[unit];
}
