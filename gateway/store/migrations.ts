// Versioned schema. Append only: a released migration is never edited.
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "request log and provider state",
    sql: `
      CREATE TABLE request_log (
        id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,               -- ms since epoch, when the request arrived
        tenant TEXT,                       -- key owner; 'anonymous' when no key is configured
        operation TEXT NOT NULL,           -- chat | completions | embeddings
        public_model TEXT NOT NULL,
        provider TEXT,
        upstream_model TEXT,
        fallback_depth INTEGER NOT NULL DEFAULT 0,
        is_overflow INTEGER NOT NULL DEFAULT 0,
        stream INTEGER NOT NULL DEFAULT 0,
        status INTEGER NOT NULL,
        error_class TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cost_usd REAL,
        ttfb_ms REAL,
        total_ms REAL,
        overhead_ms REAL,
        attempts TEXT                      -- JSON: [{attempt, provider, deployment, error_class, ms}]
      );
      CREATE INDEX request_log_ts ON request_log(ts);
      CREATE INDEX request_log_model ON request_log(public_model, ts);
      CREATE TABLE provider_state (
        provider TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: "request log: served while its model group was in panic",
    sql: `ALTER TABLE request_log ADD COLUMN panic INTEGER NOT NULL DEFAULT 0; -- 1: routed while the group's breakers were ignored`,
  },
];
