// A labelled horizontal bar for a share of something (VRAM, utilisation): a
// role="meter" with its value as text beside it, so it never relies on colour or
// length alone.
export function Meter(props: { label: string; pct: number | null; text: string; testId?: string }) {
  const { label, pct, text, testId } = props;
  const level = pct === null ? "" : pct >= 90 ? "meter-high" : pct >= 70 ? "meter-mid" : "";
  return (
    <div className="lab-meter" data-testid={testId}>
      <div className="lab-meter-head">
        <span className="muted">{label}</span>
        <span className="num">{text}</span>
      </div>
      {pct === null ? (
        <div className="bar bar-unknown" aria-hidden="true" />
      ) : (
        <div className={`bar ${level}`} role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(pct)} aria-valuetext={text}>
          <span style={{ width: `${pct}%` }} />
        </div>
      )}
    </div>
  );
}
