// Provider toggles made by operators (tray, dashboard, admin API) survive restarts.
import type { Db } from "./db.ts";

export class ProviderStateStore {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  /** provider name -> enabled, for every provider an operator has toggled. */
  load(): Map<string, boolean> {
    const rows = this.db.prepare("SELECT provider, enabled FROM provider_state").all() as { provider: string; enabled: number }[];
    return new Map(rows.map((r) => [r.provider, r.enabled === 1]));
  }

  setEnabled(provider: string, enabled: boolean): void {
    this.db
      .prepare(
        `INSERT INTO provider_state (provider, enabled, updated_at) VALUES (?, ?, ?)
         ON CONFLICT(provider) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`,
      )
      .run(provider, enabled ? 1 : 0, Date.now());
  }
}
