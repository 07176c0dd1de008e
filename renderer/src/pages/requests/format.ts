// Numbers and times on the Requests and Costs pages, for people.

const DASH = "—";

/** A duration in ms: "0.8 ms", "42 ms", "1.25 s". */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return DASH;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A count with thousands separators. */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? DASH : n.toLocaleString("en-US");
}

/** Tokens: "812", "12.4k", "3.1M". */
export function formatTokens(n: number | null | undefined): string {
  if (n === null || n === undefined) return DASH;
  if (n < 10_000) return n.toLocaleString("en-US");
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** Dollars: cents for sums over a dollar, more decimals below that so small spend is not "$0.00". */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined || !Number.isFinite(usd)) return DASH;
  if (usd === 0) return "$0";
  const a = Math.abs(usd);
  if (a < 0.0001) return `$${usd.toPrecision(2)}`;
  if (a < 0.01) return `$${usd.toFixed(5)}`;
  if (a < 1) return `$${usd.toFixed(4)}`;
  if (a < 1000) return `$${usd.toFixed(2)}`;
  return `$${Math.round(usd).toLocaleString("en-US")}`;
}

const pad = (n: number): string => String(n).padStart(2, "0");

/** A time in the viewer's zone: "14:02:03" today, "Nov 30 14:02:03" before. */
export function formatTime(ms: number, now: number = Date.now()): string {
  const d = new Date(ms);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date(now).toDateString() === d.toDateString()) return hms;
  return `${d.toLocaleDateString("en-US", { month: "short", day: "numeric" })} ${hms}`;
}

/** A date and time with milliseconds, for the details of one request. */
export function formatFullTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** A status's class for its badge: ok (2xx), warn (429, 4xx), bad (5xx and others). */
export function statusTone(status: number): "ok" | "warn" | "bad" {
  if (status >= 200 && status < 300) return "ok";
  if (status >= 400 && status < 500) return "warn";
  return "bad";
}
