// One figure on a panel: what it is, its value, and a line of context.
import type { ReactNode } from "react";

export function StatTile({ label, value, detail, testId }: { label: string; value: ReactNode; detail?: ReactNode; testId?: string }) {
  return (
    <section className="panel stat-tile" aria-label={label} data-testid={testId}>
      <h3 className="stat-tile-label muted">{label}</h3>
      <p className="stat-tile-value num">{value}</p>
      {detail !== undefined && <p className="stat-tile-detail muted">{detail}</p>}
    </section>
  );
}
