// Numbers on the Overview page, for people: ms or s, req/s, percentages, dollars.

const DASH = "—";

/** A duration in ms: "0.8 ms", "42 ms", "1.25 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** Requests a second: "0", "0.4", "12", "1.2k". */
export function formatRate(perS: number | null | undefined): string {
  if (perS === null || perS === undefined || !Number.isFinite(perS)) return DASH;
  if (perS === 0) return "0";
  if (perS < 10) return perS.toFixed(1);
  if (perS < 1000) return String(Math.round(perS));
  return `${(perS / 1000).toFixed(1)}k`;
}

/** A share as a percentage: "0 %", "0.4 %", "12 %". */
export function formatPercent(part: number, whole: number): string {
  if (whole <= 0) return DASH;
  const p = (part / whole) * 100;
  if (p === 0) return "0 %";
  return `${p < 10 ? p.toFixed(1) : Math.round(p)} %`;
}

/** A count with thousands separators. */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? DASH : n.toLocaleString("en-US");
}

/** Dollars: cents for sums over a dollar, more decimals below one cent so small spend is not "$0.00". */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return DASH;
  if (usd === 0) return "$0";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  if (usd < 100) return `$${usd.toFixed(2)}`;
  return `$${Math.round(usd).toLocaleString("en-US")}`;
}
