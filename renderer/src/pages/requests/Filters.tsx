// The Requests page's filter bar: model and provider (from /admin/providers), status, time range.
import { useId } from "react";
import { useProviders } from "../../queries.ts";
import type { RangePreset, RequestFilters } from "./types.ts";

const RANGES: { value: RangePreset; label: string }[] = [
  { value: "15m", label: "Last 15 min" },
  { value: "1h", label: "Last hour" },
  { value: "24h", label: "Last 24 h" },
  { value: "7d", label: "Last 7 days" },
  { value: "all", label: "All time" },
  { value: "custom", label: "Custom…" },
];

const STATUSES: { value: string; label: string }[] = [
  { value: "", label: "Any status" },
  { value: "ok", label: "OK (2xx)" },
  { value: "error", label: "Errors (not 2xx)" },
  ...[400, 401, 404, 408, 413, 429, 500, 502, 503, 504].map((s) => ({ value: String(s), label: String(s) })),
];

/** Names for a select: the known ones, and the current value even when it is no longer configured. */
function options(names: string[], current: string): string[] {
  const set = new Set(names);
  if (current) set.add(current);
  return [...set].sort((a, b) => a.localeCompare(b));
}

export function Filters(props: { value: RequestFilters; onChange: (f: RequestFilters) => void }) {
  const { value: f, onChange } = props;
  const id = useId();
  const providers = useProviders();
  const models = options((providers.data?.groups ?? []).map((g) => g.name), f.model);
  const providerNames = options((providers.data?.data ?? []).map((p) => p.name), f.provider);
  const set = (patch: Partial<RequestFilters>) => onChange({ ...f, ...patch });
  return (
    <form className="req-filters panel" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
      <div className="req-field">
        <label htmlFor={`${id}-model`}>Model</label>
        <select id={`${id}-model`} value={f.model} onChange={(e) => set({ model: e.target.value })}>
          <option value="">All models</option>
          {models.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </div>
      <div className="req-field">
        <label htmlFor={`${id}-provider`}>Provider</label>
        <select id={`${id}-provider`} value={f.provider} onChange={(e) => set({ provider: e.target.value })}>
          <option value="">All providers</option>
          {providerNames.map((p) => (
            <option key={p} value={p}>
              {p}
            </option>
          ))}
        </select>
      </div>
      <div className="req-field">
        <label htmlFor={`${id}-status`}>Status</label>
        <select id={`${id}-status`} value={f.status} onChange={(e) => set({ status: e.target.value })}>
          {STATUSES.map((s) => (
            <option key={s.value} value={s.value}>
              {s.label}
            </option>
          ))}
        </select>
      </div>
      <div className="req-field">
        <label htmlFor={`${id}-time`}>Time</label>
        <select id={`${id}-time`} value={f.range} onChange={(e) => set({ range: e.target.value as RangePreset })}>
          {RANGES.map((r) => (
            <option key={r.value} value={r.value}>
              {r.label}
            </option>
          ))}
        </select>
      </div>
      {f.range === "custom" && (
        <>
          <div className="req-field">
            <label htmlFor={`${id}-from`}>From</label>
            <input id={`${id}-from`} type="datetime-local" value={f.customFrom} onChange={(e) => set({ customFrom: e.target.value })} />
          </div>
          <div className="req-field">
            <label htmlFor={`${id}-to`}>To</label>
            <input id={`${id}-to`} type="datetime-local" value={f.customTo} onChange={(e) => set({ customTo: e.target.value })} />
          </div>
        </>
      )}
      {(f.model || f.provider || f.status || f.range !== "24h") && (
        <button type="button" onClick={() => onChange({ ...f, model: "", provider: "", status: "", range: "24h" })}>
          Clear filters
        </button>
      )}
    </form>
  );
}
