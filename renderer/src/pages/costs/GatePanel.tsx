// The readiness gate's criteria (GET /admin/gate) with PASS / FAIL / NO DATA.
import { useState } from "react";
import { HttpError } from "../../api.ts";
import { useGate } from "./queries.ts";
import type { Verdict } from "./types.ts";

const WINDOWS = [
  { value: "30m", label: "30 min" },
  { value: "1h", label: "1 hour" },
  { value: "24h", label: "24 hours" },
];

const TONE: Record<Verdict, string> = { PASS: "ok", FAIL: "bad", "NO DATA": "off" };

export function VerdictBadge(props: { verdict: Verdict }) {
  const tone = TONE[props.verdict];
  return <span className={`badge ${tone}${tone === "off" ? "" : ` bg-${tone}`}`}>{props.verdict}</span>;
}

export function GatePanel() {
  const [window, setWindow] = useState("30m");
  const gate = useGate(window);
  const report = gate.data;
  return (
    <section className="panel" aria-labelledby="gate-title">
      <div className="row cost-section-head">
        <h2 id="gate-title">Readiness gate</h2>
        {report && (
          <span data-testid="gate-verdict">
            <VerdictBadge verdict={report.verdict} />
          </span>
        )}
        <label className="cost-inline">
          Window{" "}
          <select value={window} onChange={(e) => setWindow(e.target.value)}>
            {WINDOWS.map((w) => (
              <option key={w.value} value={w.value}>
                {w.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      {gate.isPending ? (
        <p className="muted">Measuring the gate over the last {window}…</p>
      ) : gate.error ? (
        <p className="bad" role="alert">
          {gate.error instanceof HttpError ? gate.error.message : "The gate could not be measured."}
        </p>
      ) : report ? (
        <table aria-label="Gate criteria" className="cost-table">
          <thead>
            <tr>
              <th scope="col">Criterion</th>
              <th scope="col">Verdict</th>
              <th scope="col" className="num">
                Measured
              </th>
              <th scope="col">Threshold</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {report.criteria.map((c) => (
              <tr key={c.id} data-testid={`gate-${c.id}`} data-verdict={c.verdict}>
                <th scope="row">{c.title}</th>
                <td>
                  <VerdictBadge verdict={c.verdict} />
                </td>
                <td className="num">
                  {/* "measured" names the worst subject already ("100% (cloud-gpt)"). */}
                  {c.verdict === "NO DATA" ? "—" : c.measured}
                </td>
                <td>{c.limit ? `${c.comparator === ">=" ? "≥" : "≤"} ${c.limit}` : <span className="muted">—</span>}</td>
                <td className="muted cost-detail">{c.detail ?? ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}
