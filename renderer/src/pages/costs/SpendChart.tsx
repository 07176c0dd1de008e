// Spend per bucket as stacked CSS columns (no chart library: a few divs whose heights are
// set through React's style prop, which the page's CSP allows). The table next to it has
// the exact figures; each column's title says its own.
import { formatUsd } from "../../format.ts";
import type { Breakdown } from "./types.ts";

/** Series drawn in their own colour; the rest are summed as "other". */
const MAX_SERIES = 7;

function bucketLabel(t: number, bucket: "hour" | "day"): string {
  const d = new Date(t);
  if (bucket === "day") return d.toLocaleDateString("en-US", { month: "short", day: "numeric", timeZone: "UTC" });
  // Buckets are UTC hours: in a zone off by a half hour they start at :30, and say so.
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export function SpendChart(props: { buckets: number[]; bucket: "hour" | "day"; rows: Breakdown[]; dimensionLabel: string }) {
  const { buckets, bucket } = props;
  const drawn = props.rows.slice(0, MAX_SERIES);
  const rest = props.rows.slice(MAX_SERIES);
  const series = rest.length > 0 ? [...drawn, { name: `${rest.length} other${rest.length === 1 ? "" : "s"}`, points: buckets.map((_, i) => ({ cost_usd: rest.reduce((a, r) => a + r.points[i]!.cost_usd, 0) })) }] : drawn;
  const totals = buckets.map((_, i) => series.reduce((a, s) => a + s.points[i]!.cost_usd, 0));
  const max = Math.max(0, ...totals);
  // Label every column by day; by hour every third, so the labels do not collide.
  const labelEvery = bucket === "hour" ? 3 : Math.ceil(buckets.length / 15);
  const peak = totals.indexOf(max);
  return (
    <figure className="cost-chart">
      <div
        className="cost-columns"
        role="img"
        aria-label={max > 0 ? `Spend per ${bucket} by ${props.dimensionLabel.toLowerCase()}: highest ${formatUsd(max)} at ${bucketLabel(buckets[peak]!, bucket)}` : `No spend in this period`}
      >
        <div className="cost-axis muted" aria-hidden="true">
          <span>{formatUsd(max)}</span>
          <span>$0</span>
        </div>
        {buckets.map((t, i) => (
          <div key={t} className="cost-col" title={`${bucketLabel(t, bucket)}: ${formatUsd(totals[i])}`}>
            <div className="cost-stack">
              {max > 0 &&
                series.map((s, k) =>
                  s.points[i]!.cost_usd > 0 ? <span key={s.name} className={`cost-seg seg-${k === MAX_SERIES ? "other" : k}`} style={{ height: `${(s.points[i]!.cost_usd / max) * 100}%` }} /> : null,
                )}
            </div>
            <span className="cost-tick muted">{i % labelEvery === 0 ? bucketLabel(t, bucket) : "\u00a0"}</span>
          </div>
        ))}
      </div>
      {series.length > 0 && max > 0 && (
        <figcaption className="cost-legend">
          {series.map((s, k) => (
            <span key={s.name}>
              <span className={`cost-swatch seg-${k === MAX_SERIES ? "other" : k}`} aria-hidden="true" /> {s.name}
            </span>
          ))}
        </figcaption>
      )}
      {max === 0 && <figcaption className="muted">No spend in this period: requests to deployments without a price cost nothing here.</figcaption>}
    </figure>
  );
}
