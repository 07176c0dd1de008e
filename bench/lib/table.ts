// Plain-text tables for the bench output.

export type Cell = string | number;

/** Renders rows under a header; numbers are right-aligned, text left-aligned. */
export function table(header: string[], rows: Cell[][]): string {
  const all = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number" || /^[-+]?[\d.,]+(\s?\S{0,3})?$|^[-–]$/.test(String(r[i] ?? ""))));
  const fmt = (r: string[]): string =>
    r.map((c, i) => (numeric[i] && i > 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
  const line = widths.map((w) => "-".repeat(w)).join("  ");
  return [fmt(header), line, ...all.slice(1).map(fmt)].join("\n");
}

export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–";
}

export function fixed(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "–";
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function verdict(ok: boolean): string {
  return ok ? "MET" : "NOT MET";
}
