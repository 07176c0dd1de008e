// Numbers, money, durations and times for people, the same on every page: a sum of
// dollars or a TTFB reads the same on Overview, Requests, Costs, Lab, Routes and
// Batches. Pure functions of their arguments (the clock is passed in), so they are
// unit-tested (test/unit/format.test.ts).
import type { BreakerState } from "./types.ts";

/** What a missing or non-finite value shows as. */
export const DASH = "—";

const missing = (n: number | null | undefined): n is null | undefined => n === null || n === undefined || !Number.isFinite(n);

/** A count with thousands separators: "1,234". */
export function formatCount(n: number | null | undefined): string {
  return missing(n) ? DASH : n.toLocaleString("en-US");
}

/** Tokens: "812", "9,999", "12.4k", "3.1M". */
export function formatTokens(n: number | null | undefined): string {
  if (missing(n)) return DASH;
  if (n < 10_000) return n.toLocaleString("en-US");
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

/** Requests a second: "0", "0.4", "12", "1.2k". */
export function formatRate(perS: number | null | undefined): string {
  if (missing(perS)) return DASH;
  if (perS === 0) return "0";
  if (perS < 10) return perS.toFixed(1);
  if (perS < 1000) return String(Math.round(perS));
  return `${(perS / 1000).toFixed(1)}k`;
}

/**
 * Dollars, one rule everywhere: $0 for nothing; from $1 on, cents ("$12.50",
 * "$1,234.00"); below $1, three significant digits so small spend is not "$0.00"
 * ("$0.0123", "$0.000456"), never fewer than two decimals ("$0.50", "$0.01").
 */
export function formatUsd(usd: number | null | undefined): string {
  if (missing(usd)) return DASH;
  if (usd === 0) return "$0";
  const sign = usd < 0 ? "-" : "";
  const a = Math.abs(usd);
  if (a >= 1) return `${sign}$${a.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  // Three significant digits: the first non-zero decimal and the two after it.
  let decimals = Math.max(2, 2 - Math.floor(Math.log10(a)));
  // 0.9996 rounds up to 1.00: then it is a dollar, in cents.
  if (Number(a.toFixed(decimals)) >= 1) return `${sign}$1.00`;
  let text = a.toFixed(Math.min(decimals, 20));
  // Trailing zeros past the cents say nothing ("$0.0100" is "$0.01").
  while (decimals > 2 && text.endsWith("0")) {
    text = text.slice(0, -1);
    decimals--;
  }
  return `${sign}$${text}`;
}

/** A duration in ms: "0.8 ms", "42 ms", "1.25 s", "12.5 s". */
export function formatMs(ms: number | null | undefined): string {
  if (missing(ms)) return DASH;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A length of time (ms, whole seconds): "12 s", "4 min 5 s", "3 h 12 min", "2 d 3 h". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/**
 * How far a moment is from now (both ms since the epoch, or an ISO time): "just now",
 * "4 min 5 s ago", "in 2 h 0 min". The gateway's clock and the browser's differ a
 * little: a few seconds either way is now.
 */
export function formatRelative(at: number | string | null | undefined, now: number): string {
  const t = typeof at === "string" ? Date.parse(at) : at;
  if (missing(t)) return DASH;
  const d = t - now;
  if (Math.abs(d) < 5000) return "just now";
  return d > 0 ? `in ${formatDuration(d)}` : `${formatDuration(-d)} ago`;
}

const pad = (n: number): string => String(n).padStart(2, "0");

/** A time in the viewer's zone (ms or ISO): "14:02:03" today, "Nov 30 14:02:03" another day. */
export function formatTime(at: number | string, now: number = Date.now()): string {
  const d = new Date(at);
  if (Number.isNaN(d.getTime())) return DASH;
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date(now).toDateString() === d.toDateString()) return hms;
  return `${d.toLocaleDateString("en-US", { month: "short", day: "numeric" })} ${hms}`;
}

/** Hours and minutes in the viewer's zone, 24-hour like every time on the dashboard: "09:05". */
export function formatHourMinute(at: number | string): string {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? DASH : `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A date and time with milliseconds in the viewer's zone, for the details of one request. */
export function formatFullTime(ms: number): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return DASH;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/** A fraction 0..1 as a percentage: "0 %", "0.4 %", "12 %", "100 %". */
export function formatFraction(x: number | null | undefined): string {
  if (missing(x)) return DASH;
  const p = x * 100;
  if (p === 0) return "0 %";
  return `${Math.abs(p) < 10 ? p.toFixed(1) : Math.round(p)} %`;
}

/** A share of a whole as a percentage ("12 %"); a dash when there is no whole. */
export function formatPercent(part: number, whole: number): string {
  return whole > 0 ? formatFraction(part / whole) : DASH;
}

/** A share as a CSS width for a bar, clamped to 0..100 %: "37.5%". */
export function barWidth(part: number, whole: number): string {
  return `${percent(part, whole) ?? 0}%`;
}

/** A share as a number 0..100 for a bar, clamped; null when there is no whole. */
export function percent(part: number | null | undefined, whole: number | null | undefined): number | null {
  if (missing(part) || missing(whole) || whole === 0) return null;
  return Math.min(100, Math.max(0, (part / whole) * 100));
}

/** Bytes in binary units, as GPU tools count them: "512 B", "4.7 GiB", "120 GiB". */
export function formatBytes(bytes: number | null | undefined): string {
  if (missing(bytes)) return DASH;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** MiB (nvidia-smi's unit) in binary units. */
export function formatMiB(mib: number | null | undefined): string {
  return missing(mib) ? DASH : formatBytes(mib * 1024 * 1024);
}

/** A circuit breaker's state in words: "closed", "open", "half-open". */
export function breakerWord(state: BreakerState): string {
  return state === "half_open" ? "half-open" : state;
}
