// A provider's TTFB over the last hour (p50 solid, p95 dashed), drawn by uPlot on a
// canvas. Buckets without requests are gaps, not zeros: no request, no TTFB. The
// canvas cannot read CSS variables, so the theme's colours are read once per colour
// scheme and the chart is rebuilt when the scheme changes.
import { useEffect, useMemo, useRef, useState } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { formatHourMinute, formatMs, formatTime } from "../format.ts";
import type { TrafficPoint } from "../pages/overview-types.ts";

export interface TtfbChartProps {
  /** Whose TTFB (for the chart's accessible name). */
  name: string;
  points: TrafficPoint[];
  /** The window [from, to) and its bucket width, ms. */
  from: number;
  to: number;
  bucketMs: number;
  /** What the span is, for people: "last hour", "since 11:34". */
  rangeLabel: string;
  height?: number;
}

type Data = [number[], (number | null)[], (number | null)[]];

/** One x per bucket of the window (seconds, as uPlot's time scale wants), null where a bucket had no TTFB. */
function dense(points: TrafficPoint[], from: number, to: number, bucketMs: number): Data {
  const byT = new Map(points.map((p) => [p.t, p]));
  const xs: number[] = [];
  const p50: (number | null)[] = [];
  const p95: (number | null)[] = [];
  for (let t = from; t < to; t += bucketMs) {
    const p = byT.get(t);
    xs.push(t / 1000);
    p50.push(p?.ttfb_p50_ms ?? null);
    p95.push(p?.ttfb_p95_ms ?? null);
  }
  return [xs, p50, p95];
}

function useColorScheme(): "light" | "dark" {
  const query = useMemo(() => matchMedia("(prefers-color-scheme: dark)"), []);
  const [dark, setDark] = useState(query.matches);
  useEffect(() => {
    const update = () => setDark(query.matches);
    query.addEventListener("change", update);
    return () => query.removeEventListener("change", update);
  }, [query]);
  return dark ? "dark" : "light";
}

/** Points with no neighbour are drawn as dots (a lone bucket would otherwise draw nothing). */
const lonePoints = (u: uPlot, seriesIdx: number): number[] | null => {
  const ys = u.data[seriesIdx]!;
  const out: number[] = [];
  for (let i = 0; i < ys.length; i++) if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) out.push(i);
  return out;
};

function chartOptions(width: number, height: number, onCursor: (idx: number | null) => void): uPlot.Options {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string) => css.getPropertyValue(name).trim();
  const font = `11px ${css.fontFamily || "system-ui, sans-serif"}`;
  const axis = { stroke: v("--muted"), font, labelFont: font, grid: { stroke: v("--border"), width: 1 }, ticks: { stroke: v("--border"), width: 1, size: 4 } };
  const line = (label: string, dash?: number[]): uPlot.Series => ({
    label,
    stroke: v("--accent"),
    width: 1.5,
    dash,
    spanGaps: false,
    points: { show: true, size: 4, fill: v("--accent"), filter: lonePoints },
  });
  return {
    width,
    height,
    legend: { show: false },
    cursor: { y: false, points: { size: 6 } },
    scales: {
      x: { time: true },
      // From zero, with room above the highest point; a fixed range while there is nothing to show.
      y: { range: (_u, _min, max) => [0, max !== null && max > 0 ? max * 1.15 : 100] },
    },
    axes: [
      // Ticks on whole minutes only, so no two read the same.
      { ...axis, space: 60, incrs: [60, 120, 300, 600, 900, 1200, 1800, 3600], values: (_u, splits) => splits.map((t) => formatHourMinute(t * 1000)) },
      { ...axis, label: "TTFB (ms)", labelSize: 16, size: 44, space: 24, values: (_u, splits) => splits.map((s) => String(Math.round(s))) },
    ],
    series: [{}, line("p50"), line("p95", [4, 3])],
    hooks: { setCursor: [(u) => onCursor(u.cursor.idx ?? null)] },
  };
}

const timeOf = (s: number) => formatTime(s * 1000);

export function TtfbChart({ name, points, from, to, bucketMs, rangeLabel, height = 150 }: TtfbChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const scheme = useColorScheme();
  const data = useMemo(() => dense(points, from, to, bucketMs), [points, from, to, bucketMs]);
  const latest = useRef(data);
  latest.current = data;
  const [cursor, setCursor] = useState<number | null>(null);

  useEffect(() => {
    const el = box.current!;
    const u = new uPlot(chartOptions(Math.max(100, el.clientWidth), height, setCursor), latest.current, el);
    plot.current = u;
    const resize = new ResizeObserver(() => {
      if (el.clientWidth > 0 && el.clientWidth !== u.width) u.setSize({ width: el.clientWidth, height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [scheme, height]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  const shown = data[1].filter((x) => x !== null).length;
  // Under the cursor: that bucket; otherwise the newest bucket with a TTFB.
  let i = cursor ?? -1;
  if (i < 0 || data[1][i] == null) for (i = data[1].length - 1; i >= 0 && data[1][i] == null; i--);
  const readout = i >= 0 ? `${cursor !== null && data[1][cursor] != null ? timeOf(data[0][i]!) : "latest"}: p50 ${formatMs(data[1][i])} · p95 ${formatMs(data[2][i])}` : "";

  return (
    <figure className="ttfb-chart" data-points={shown} aria-label={`Time to first byte of ${name}, ${rangeLabel}`}>
      <figcaption className="ttfb-chart-legend muted">
        <span className="ttfb-chart-range">TTFB {rangeLabel}</span>
        <span className="ttfb-key ttfb-key-p50" aria-hidden="true" /> p50
        <span className="ttfb-key ttfb-key-p95" aria-hidden="true" /> p95
      </figcaption>
      <div ref={box} className="ttfb-chart-plot" />
      {shown === 0 && <p className="ttfb-chart-empty muted">No requests {rangeLabel}</p>}
      <p className="ttfb-chart-readout muted num">{readout}</p>
    </figure>
  );
}
