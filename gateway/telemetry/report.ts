// `labgate report`'s text: the analytics summary (store/analytics.ts) as readable tables.
import type { Summary } from "../store/analytics.ts";

/** "24h", "7d", "90m", "2w", "3600s" as ms; NaN when it is none of these. */
export function parseSince(text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|d|w)$/.exec(text.trim());
  if (!m) return NaN;
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as "s" | "m" | "h" | "d" | "w"];
  const ms = Number(m[1]) * unit;
  return ms > 0 ? ms : NaN;
}

function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}

const usd = (x: number): string => `$${x < 1 ? x.toFixed(4) : x.toFixed(2)}`;
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const ms = (x: number | null): string => (x === null ? "-" : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const name = (s: string | null): string => s ?? "(none)";

export function formatReport(s: Summary, dbFile: string): string {
  const out: string[] = [];
  out.push(`labgate report: ${new Date(s.from).toISOString()} .. ${new Date(s.to).toISOString()} (whole hours, UTC) from ${dbFile}`);
  out.push(`${s.requests} requests, ${s.errors} errors (${s.requests > 0 ? pct(s.errors / s.requests) : "0%"}), spend ${usd(s.cost_usd)}`);
  if (s.requests === 0) {
    out.push("", "No requests in this period.");
    return out.join("\n");
  }
  out.push("", "Spend by provider, model and tier");
  out.push(
    table(
      ["provider", "model", "tier", "requests", "prompt tok", "completion tok", "cost"],
      s.spend.map((r) => [name(r.provider), r.model, name(r.tier), r.requests, r.prompt_tokens, r.completion_tokens, usd(r.cost_usd)]),
    ),
  );
  out.push("", `Requests, errors and TTFB by provider (p50/p95 within ±${(s.ttfb_precision * 100).toFixed(1)}%)`);
  out.push(
    table(
      ["provider", "requests", "errors", "error rate", "p50 TTFB ms", "p95 TTFB ms"],
      s.providers.map((p) => [name(p.provider), p.requests, p.errors, p.requests > 0 ? pct(p.errors / p.requests) : "-", ms(p.p50_ttfb_ms), ms(p.p95_ttfb_ms)]),
    ),
  );
  out.push("", "Errors by class");
  out.push(s.error_classes.length === 0 ? "(none)" : table(["provider", "class", "errors"], s.error_classes.map((e) => [name(e.provider), e.error_class, e.errors])));
  out.push("", "Fallbacks (first attempt's provider -> the one that answered or was tried last)");
  out.push(
    s.fallbacks.length === 0
      ? "(none)"
      : table(["from", "to", "count", "succeeded", "success rate"], s.fallbacks.map((f) => [name(f.from), name(f.to), f.count, f.success, pct(f.success_rate)])),
  );
  return out.join("\n");
}
