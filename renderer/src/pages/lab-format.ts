// Numbers on the Lab page, for people: sizes in GiB/MiB, durations in h/min/s.

/** Bytes as "4.7 GB"-style text (binary units, as GPU tools count them). */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** MiB (nvidia-smi's unit) as text. */
export function formatMiB(mib: number | null | undefined): string {
  return mib === null || mib === undefined ? "—" : formatBytes(mib * 1024 * 1024);
}

/** A length of time as "3 h 12 min", "4 min 05 s" or "12 s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, "0")} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** How long ago (or from now) an ISO time is, for people. */
export function formatRelative(iso: string | null, now: number): string {
  if (!iso) return "—";
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  const d = t - now;
  // The gateway's clock and the browser's differ a little: a moment either way is now.
  if (Math.abs(d) < 2000) return "just now";
  return d >= 0 ? `in ${formatDuration(d)}` : `${formatDuration(-d)} ago`;
}

/** A share 0..1 as a percentage for a bar, clamped. */
export function percent(part: number | null | undefined, whole: number | null | undefined): number | null {
  if (part === null || part === undefined || !whole) return null;
  return Math.min(100, Math.max(0, (part / whole) * 100));
}
