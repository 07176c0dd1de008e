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
  {
    version: 5,
    name: "batch queue: files, batches and their items",
    // gateway/store/batches.ts. An item's result line is written in the transaction that ends
    // it, and the output and error files are assembled from these rows at the end, so a crash
    // can neither lose a line nor write one twice.
    sql: `
      CREATE TABLE batch_file (
        id TEXT PRIMARY KEY,               -- file-<random>: also the name of its file in the files folder
        purpose TEXT NOT NULL,             -- batch | batch_output
        filename TEXT NOT NULL,            -- as uploaded (shown only; never a path)
        bytes INTEGER NOT NULL,
        lines INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,       -- seconds since epoch (OpenAI's unit)
        tenant TEXT
      );
      CREATE TABLE batch (
        id TEXT PRIMARY KEY,               -- batch_<random>
        tenant TEXT,
        endpoint TEXT NOT NULL,
        input_file_id TEXT NOT NULL,
        completion_window TEXT NOT NULL,   -- as the request or the profile said
        window_s INTEGER NOT NULL,
        profile TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,              -- validating | in_progress | finalizing | completed | failed | expired | cancelling | cancelled
        metadata TEXT,                     -- JSON object or null
        options TEXT NOT NULL,             -- JSON: the profile's settings when the batch was made (concurrency, retries, redact_pii)
        ending TEXT,                       -- completed | expired | cancelled once its items are all ended and its files are being written
        errors TEXT,                       -- JSON {object: "list", data: [...]} or null
        output_file_id TEXT,
        error_file_id TEXT,
        created_at INTEGER NOT NULL,       -- seconds since epoch, like every *_at here
        in_progress_at INTEGER,
        expires_at INTEGER NOT NULL,
        finalizing_at INTEGER,
        completed_at INTEGER,
        failed_at INTEGER,
        expired_at INTEGER,
        cancelling_at INTEGER,
        cancelled_at INTEGER,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        request_total INTEGER,             -- request_counts, kept when the batch ends: its items are purged then
        request_completed INTEGER,
        request_failed INTEGER,
        purged INTEGER NOT NULL DEFAULT 0  -- 1: its items are gone (their lines live on in its files)
      );
      CREATE INDEX batch_status ON batch(status);
      CREATE TABLE batch_item (
        batch_id TEXT NOT NULL,
        line INTEGER NOT NULL,             -- 1-based line of the input file
        custom_id TEXT NOT NULL,
        body TEXT NOT NULL,                -- the request body (JSON), profile defaults filled in
        state TEXT NOT NULL,               -- pending | running | done | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before INTEGER NOT NULL DEFAULT 0, -- ms since epoch: retry backoff
        request_id TEXT,                   -- the request log row of its last attempt
        file TEXT,                         -- output | error, once ended
        result TEXT,                       -- the output or error file line (JSON), once ended
        PRIMARY KEY (batch_id, line)
      ) WITHOUT ROWID;
      CREATE INDEX batch_item_state ON batch_item(batch_id, state, line); -- a batch's due items in input order, without a sort
    `,
  },
];
