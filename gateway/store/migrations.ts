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
  {
    version: 3,
    name: "analytics: tier, attempt count and first provider per row; hourly rollups",
    // The rollups are what /admin/analytics and `labgate report` read (gateway/store/rollup.ts
    // keeps them, in the log's own insert transaction). Rows logged before this version get
    // their rollups here, from their attempts JSON; their tier is unknown ('').
    sql: `
      ALTER TABLE request_log ADD COLUMN tier TEXT;                                  -- tier of the deployment that answered
      ALTER TABLE request_log ADD COLUMN attempt_count INTEGER NOT NULL DEFAULT 1;   -- attempts made (0: nothing was tried)
      ALTER TABLE request_log ADD COLUMN first_provider TEXT;                        -- provider of the first attempt
      CREATE TABLE request_rollup (       -- spend and traffic
        hour INTEGER NOT NULL,             -- ms since epoch of the hour's start (UTC)
        provider TEXT NOT NULL,            -- '' when nothing was tried
        model TEXT NOT NULL,               -- the public model (group) asked for
        tenant TEXT NOT NULL,              -- the key's tenant
        tier TEXT NOT NULL,                -- '' when unknown
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,           -- status >= 400
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        PRIMARY KEY (hour, provider, model, tenant, tier)
      ) WITHOUT ROWID;
      CREATE TABLE request_rollup_provider ( -- requests per provider: the distribution, without the tenants x models
        hour INTEGER NOT NULL,
        provider TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        PRIMARY KEY (hour, provider)
      ) WITHOUT ROWID;
      CREATE TABLE request_rollup_error (
        hour INTEGER NOT NULL,
        provider TEXT NOT NULL,
        error_class TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (hour, provider, error_class)
      ) WITHOUT ROWID;
      CREATE TABLE request_rollup_fallback ( -- requests that went past their first attempt (or down a fallback chain)
        hour INTEGER NOT NULL,
        first_provider TEXT NOT NULL,      -- provider of the first attempt
        provider TEXT NOT NULL,            -- the one that answered (or was tried last)
        n INTEGER NOT NULL,
        ok INTEGER NOT NULL,               -- ... that ended with status < 400
        PRIMARY KEY (hour, first_provider, provider)
      ) WITHOUT ROWID;
      CREATE TABLE request_rollup_ttfb (
        hour INTEGER NOT NULL,
        provider TEXT NOT NULL,
        bin INTEGER NOT NULL,              -- floor(log2(ttfb_ms) * 8): bins 9% wide
        n INTEGER NOT NULL,
        PRIMARY KEY (hour, provider, bin)
      ) WITHOUT ROWID;
      INSERT INTO request_rollup
        SELECT CAST(ts / 3600000 AS INTEGER) * 3600000, coalesce(provider, ''), public_model, coalesce(tenant, ''), '',
               count(*), sum(status >= 400), coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost_usd), 0)
        FROM request_log GROUP BY 1, 2, 3, 4;
      INSERT INTO request_rollup_provider
        SELECT CAST(ts / 3600000 AS INTEGER) * 3600000, coalesce(provider, ''), count(*), sum(status >= 400)
        FROM request_log GROUP BY 1, 2;
      INSERT INTO request_rollup_error
        SELECT CAST(ts / 3600000 AS INTEGER) * 3600000, coalesce(provider, ''), error_class, count(*)
        FROM request_log WHERE error_class IS NOT NULL GROUP BY 1, 2, 3;
      INSERT INTO request_rollup_fallback
        SELECT CAST(ts / 3600000 AS INTEGER) * 3600000, coalesce(json_extract(attempts, '$[0].provider'), ''), coalesce(provider, ''),
               count(*), sum(status < 400)
        FROM request_log WHERE fallback_depth > 0 OR json_array_length(attempts) > 1 GROUP BY 1, 2, 3;
      INSERT INTO request_rollup_ttfb
        SELECT CAST(ts / 3600000 AS INTEGER) * 3600000, coalesce(provider, ''), CAST(floor(log2(max(ttfb_ms, 0.001)) * 8) AS INTEGER), count(*)
        FROM request_log WHERE ttfb_ms IS NOT NULL GROUP BY 1, 2, 3;
    `,
  },
  {
    version: 4,
    name: "analytics: daily spend rollups",
    // Spend by day reads ~24 times fewer rows than by hour (store/analytics.ts); kept with the hourly ones.
    sql: `
      CREATE TABLE request_rollup_day (
        day INTEGER NOT NULL,              -- ms since epoch of the day's start (UTC)
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        tenant TEXT NOT NULL,
        tier TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        PRIMARY KEY (day, provider, model, tenant, tier)
      ) WITHOUT ROWID;
      INSERT INTO request_rollup_day
        SELECT (hour / 86400000) * 86400000, provider, model, tenant, tier,
               sum(requests), sum(errors), sum(prompt_tokens), sum(completion_tokens), sum(cost_usd)
        FROM request_rollup GROUP BY 1, 2, 3, 4, 5;
    `,
  },
];
