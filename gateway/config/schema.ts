// The shape of labgate.yaml. One zod schema is the source of truth for loading,
// for `labgate validate`, and for resources/schemas/labgate.schema.json.
import { z } from "zod";

/** A secret is never written in clear: it is a reference resolved at start. */
export const SECRET_REF = /^(env:[A-Za-z_][A-Za-z0-9_]*|vault:[A-Za-z0-9_./-]+(#[A-Za-z0-9_.-]+)?)$/;

export const secretRef = z
  .string()
  .regex(SECRET_REF, {
    message: "plain-text secret: write a reference instead (env:NAME or vault:PATH)",
  })
  .describe("A secret reference: env:NAME (environment variable) or vault:PATH.");

// Node's timers take at most 2^31-1 ms; a longer one would fire at once.
const seconds = z.number().positive().max(2_147_483);
const firstByteTimeout = z
  .number()
  .positive()
  .describe(
    "Streams only: fail over if no first chunk arrives within this many seconds (non-stream requests use timeout_s). " +
      "Without it, a stream that has not started after server.sse_keepalive_s is committed to its deployment and kept warm with SSE comments.",
  );
const port = z.number().int().min(0).max(65535);

export const PROVIDER_TYPES = [
  "ollama",
  "llamacpp",
  "vllm",
  "embedded",
  "openai",
  "openai-compatible",
  "azure",
  "anthropic",
] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

const limits = {
  rpm: z.number().int().positive().optional().describe("Requests per minute this target accepts."),
  tpm: z.number().int().positive().optional().describe("Tokens per minute this target accepts."),
  max_in_flight: z.number().int().positive().optional().describe("Concurrent requests before it counts as saturated."),
};

// A server labgate runs itself (llama-server, ollama serve, vllm serve). Restart
// backoff follows GPUStack: 10 s doubling to 5 min; a crash loop (max_restarts
// crashes within restart_window_s) gives up until an operator starts it again.
export const launchSchema = z
  .object({
    command: z.string().min(1).describe("The program, e.g. llama-server, ollama, vllm (a path, or a name on PATH)."),
    args: z.array(z.string()).default([]),
    env: z.record(z.string(), z.string()).optional().describe("Extra environment variables (plain values; keep secrets out of the config)."),
    cwd: z.string().optional(),
    port: port.min(1).optional().describe("Where it listens; defaults to the provider's base_url port (one of the two is needed)."),
    health_path: z.string().startsWith("/").optional().describe("Polled until it answers 200 before traffic is routed (default by type: /health, /api/version for ollama)."),
    startup_timeout_s: seconds.default(120),
    stop_timeout_s: seconds.default(10).describe("After SIGTERM to its process group, SIGKILL after this long."),
    on_demand: z.boolean().default(false).describe("Start on the first request for one of its models (requests wait for it) instead of with the gateway."),
    idle_ttl_s: seconds.optional().describe("Stop after this long without traffic (with on_demand)."),
    gpus: z.array(z.number().int().nonnegative()).optional().describe("Pin to these GPUs (sets CUDA_VISIBLE_DEVICES and HIP_VISIBLE_DEVICES)."),
    restart: z.enum(["always", "on-failure", "never"]).default("on-failure"),
    backoff_initial_s: seconds.default(10),
    backoff_max_s: seconds.default(300),
    max_restarts: z.number().int().nonnegative().default(5),
    restart_window_s: seconds.default(600),
  })
  .strict();
export type LaunchConfig = z.infer<typeof launchSchema>;

export const providerSchema = z
  .object({
    type: z.enum(PROVIDER_TYPES),
    base_url: z.url().optional().describe("Upstream URL; cloud types default to their public endpoint."),
    api_key: secretRef.optional(),
    api_version: z.string().optional().describe("Azure OpenAI api-version."),
    headers: z.record(z.string(), secretRef).optional().describe("Extra upstream headers, each a secret reference."),
    timeout_s: seconds.optional(),
    first_byte_timeout_s: firstByteTimeout.optional(),
    enabled: z.boolean().optional(),
    // embedded engine
    models_dir: z.string().optional().describe("embedded: folder whose *.gguf files become models."),
    threads: z.number().int().positive().optional().describe("embedded: CPU threads per generation."),
    idle_ttl_s: seconds.optional().describe("embedded: unload a model after this long unused."),
    max_queue: z.number().int().nonnegative().optional().describe("embedded: waiting requests per model before 429."),
    parallel: z.number().int().positive().optional().describe("embedded: context sequences per model."),
    context_size: z.number().int().positive().optional().describe("embedded: context length per sequence."),
    gpu: z.union([z.boolean(), z.enum(["auto", "cuda", "vulkan", "metal"])]).optional(),
    model_names: z.record(z.string(), z.string()).optional().describe("embedded: file name -> model name overrides."),
    launch: launchSchema.optional().describe("labgate runs this server as a supervised child process (started, health-checked, restarted, stopped)."),
    ...limits,
  })
  .strict();
export type ProviderConfig = z.infer<typeof providerSchema>;

export const priceSchema = z
  .object({
    input_per_1m: z.number().nonnegative(),
    output_per_1m: z.number().nonnegative(),
  })
  .strict();
export type Price = z.infer<typeof priceSchema>;

export const deploymentSchema = z
  .object({
    provider: z.string().min(1),
    model: z.string().min(1),
    weight: z.number().nonnegative().optional(),
    tier: z.string().optional().describe("Free-form tier label: local, standard, premium..."),
    price: priceSchema.optional(),
    hourly_cost: z
      .number()
      .nonnegative()
      .optional()
      .describe("USD per hour of the hardware behind a local deployment, charged to its requests by their busy time (instead of a per-token price)."),
    overflow: z.boolean().optional().describe("Takes traffic only when every non-overflow deployment cannot."),
    context_length: z.number().int().positive().optional(),
    timeout_s: seconds.optional(),
    first_byte_timeout_s: firstByteTimeout.optional(),
    ...limits,
  })
  .strict();
export type DeploymentConfig = z.infer<typeof deploymentSchema>;

export const STRATEGIES = ["weighted", "least-busy", "latency", "usage", "cost", "priority"] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export const modelGroupSchema = z
  .object({
    strategy: z.enum(STRATEGIES).optional(),
    deployments: z.array(deploymentSchema).min(1),
    fallbacks: z.array(z.string().min(1)).optional(),
  })
  .strict();
export type ModelGroupConfig = z.infer<typeof modelGroupSchema>;

// Defaults follow Envoy's outlier detection (5 consecutive 5xx, 30 s base ejection)
// rather than a low error rate: a deployment failing 1 request in 20 at random is
// never ejected (5 failures in a row at 5% is ~3e-7 per request; a 50% rate over
// 20 requests at 5% is ~1e-9), while one that is down is ejected after 5 requests.
export const circuitBreakerSchema = z
  .object({
    error_rate_threshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe("Open when more than this share of the last window's requests failed (once min_requests were seen)."),
    min_requests: z.number().int().positive().default(20),
    window_s: seconds.default(60),
    consecutive_failures: z.number().int().positive().default(5).describe("Open after this many failures in a row."),
    cooldown_s: seconds.default(30).describe("How long an open breaker stays open before it lets a probe through."),
    half_open_probes: z.number().int().positive().default(1),
    panic_threshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe(
        "When the share of a model group's enabled deployments whose breaker is not open falls below this, the group is in panic: " +
          "open breakers are ignored for it and traffic is spread over all its enabled deployments (some answers beat none). 0 turns panic off.",
      ),
  })
  .strict();

export const routerSchema = z
  .object({
    timeout_s: seconds.default(600).describe("One attempt: the whole answer (JSON), or the first chunk and then the longest silence (streams)."),
    total_timeout_s: seconds
      .default(600)
      .describe(
        "One request across all its attempts, backoffs and fallbacks, until its answer starts (a stream already flowing is bounded by timeout_s of silence instead).",
      ),
    first_byte_timeout_s: firstByteTimeout.optional(),
    retries: z.number().int().nonnegative().default(2),
    retry_backoff_ms: z.number().nonnegative().default(200),
    retry_backoff_max_ms: z.number().nonnegative().default(5000),
    max_fallback_depth: z.number().int().positive().default(5),
    circuit_breaker: circuitBreakerSchema.default(circuitBreakerSchema.parse({})),
  })
  .strict();

export const serverSchema = z
  .object({
    host: z.string().default("127.0.0.1"),
    port: port.default(4000),
    master_key: secretRef.optional(),
    admin_key: secretRef.optional(),
    body_limit_mb: z.number().positive().default(10),
    sse_keepalive_s: seconds.default(5),
    data_dir: z.string().optional(),
    // Web pages the user's browser opens can reach a gateway on loopback (DNS rebinding,
    // cross-site POSTs): every request's Host is checked, and CORS is off unless asked for.
    allowed_hosts: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Host names (or name:port) accepted in the Host header besides localhost, 127.0.0.0/8, [::1] and server.host. " +
          'Add the names clients use to reach a gateway bound to a LAN address; "*" turns the Host check off (behind a proxy that checks it).',
      ),
    cors_origins: z
      .array(z.string().min(1))
      .default([])
      .describe("Web origins (scheme://host[:port]) allowed to call /v1 from a browser (CORS). None by default."),
    allow_unauthenticated: z
      .boolean()
      .default(false)
      .describe("Allow listening on a non-loopback address without server.master_key (anyone on the network can then use /v1 and its cloud keys)."),
    request_timeout_s: seconds
      .default(60)
      .describe("Time a client has to send a whole request (headers and body); answers, streams included, are not bounded by it."),
    headers_timeout_s: seconds.default(15).describe("Time a client has to send a request's headers (at most request_timeout_s)."),
    shutdown_grace_s: z
      .number()
      .nonnegative()
      .default(10)
      .describe("On SIGTERM/SIGINT, in-flight requests get this long to finish; then they are cancelled (logged as 499) and the process exits."),
  })
  .strict();

// The request log grows by one row per request (about 380 bytes on disk each, see
// README "Storage"); past this ceiling its oldest rows are deleted, a few at a time.
export const storeSchema = z
  .object({
    max_log_mb: z
      .number()
      .positive()
      .default(1024)
      .describe(
        "Ceiling of the request log in the database (MB; its table and indexes). Past it the oldest rows are deleted in small batches " +
          "off the request path and their space is reused, so the file stops growing. 1024 MB holds about 2.8 million typical rows.",
      ),
    retention_days: z
      .number()
      .positive()
      .default(30)
      .describe(
        "Days the request log and its hourly analytics rollups are kept. Older rows are deleted in small batches off the request path " +
          "(checked every minute) and the freed pages are given back to the file system a few at a time (incremental vacuum).",
      ),
  })
  .strict();

/** Where inference servers usually listen: Ollama; llama.cpp (8080, 9931 from 2026); vLLM and llama-server (8000); vLLM; LM Studio; Jan. */
export const DEFAULT_DISCOVERY_PORTS = [11434, 8080, 8000, 9931, 8001, 1234, 1337];

export const labSchema = z
  .object({
    discovery: z
      .object({
        enabled: z.boolean().default(true).describe("Probe the hosts' ports in the background for Ollama, llama.cpp, vLLM and other OpenAI-compatible servers."),
        interval_s: seconds.default(10),
        hosts: z.array(z.string().min(1)).default(["127.0.0.1"]),
        ports: z.array(port.min(1)).default(DEFAULT_DISCOVERY_PORTS),
        grace_s: seconds.default(30).describe("A server that stops answering keeps its provider (unhealthy); its models leave after this long."),
      })
      .strict()
      .default({ enabled: true, interval_s: 10, hosts: ["127.0.0.1"], ports: DEFAULT_DISCOVERY_PORTS, grace_s: 30 }),
  })
  .strict();

const budgetLimit = z.number().positive();
export const budgetsSchema = z
  .object({
    tiers: z
      .record(
        z.string().min(1),
        z
          .object({
            max_usd_per_1k_tokens: budgetLimit.optional().describe("Ceiling of the tier's cost per 1,000 tokens over the day."),
            daily_usd: budgetLimit.optional().describe("Ceiling of the tier's spend per day."),
          })
          .strict(),
      )
      .default({}),
    providers: z.record(z.string().min(1), z.object({ daily_usd: budgetLimit }).strict()).default({}),
    on_exceed: z
      .enum(["alert", "block_overflow"])
      .default("alert")
      .describe("alert: /metrics, the gate, the events and one log line; block_overflow: also no cloud overflow for the rest of the day (local deployments keep serving)."),
  })
  .strict();
export type BudgetsConfig = z.infer<typeof budgetsSchema>;

// The readiness gate (`labgate gate`, GET /admin/gate): each criterion's threshold over the
// window. Ratios are fractions (0.999 is 99.9%). Costs per 1k tokens are checked against budgets.tiers.
const gateRatio = z.number().min(0).max(1);
export const gateThresholdsSchema = z
  .object({
    availability: gateRatio.default(0.999).describe("Least share of requests not ending in a 5xx (cancelled ones left out)."),
    error_rate: gateRatio.default(0.01).describe("Most share of requests ending in an error (cancelled ones are not errors)."),
    fallback_success: gateRatio.default(0.95).describe("Least share of requests that needed more than one attempt and still got an answer."),
    routing_p95_ms: z.number().nonnegative().default(150).describe("Most p95 of the routing time (from the request log: labgate's whole overhead), ms."),
    provider_error_share: gateRatio.default(0.5).describe("Most share of all errors one provider may have."),
    provider_traffic_share: gateRatio.default(0.8).describe("Most share of the traffic one provider may carry (providers in maintenance are exempt)."),
    weight_tolerance: gateRatio.default(0.1).describe("In weighted model groups, how far a deployment's traffic share may be from its weight's share, relative to it (0.1: ±10%)."),
    attribution: gateRatio.default(0.95).describe("Least share of requests with a tenant (not anonymous)."),
    kv_cache_hit_rate: gateRatio.default(0.8).describe("vLLM providers: least prefix-cache hits over queries."),
    queue_depth_p95: z.number().nonnegative().default(100).describe("vLLM providers: most p95 of the requests waiting in each one's queue over the window's scrapes."),
    batch_success: gateRatio.default(0.95).describe("Least share of batches that completed, once batches exist."),
  })
  .strict();
export type GateThresholds = z.infer<typeof gateThresholdsSchema>;

export const gateSchema = z
  .object({
    thresholds: gateThresholdsSchema.default(gateThresholdsSchema.parse({})),
    maintenance: z
      .array(z.string().min(1))
      .default([])
      .describe("Providers in maintenance: exempt from the traffic-share criterion (e.g. the one carrying the lab while the others are serviced)."),
  })
  .strict();
export type GateConfig = z.infer<typeof gateSchema>;

// The local batch queue (OpenAI's Batch API on localhost; gateway/batch/).
/** A completion window: a number and a unit (s, m, h, d), e.g. 30s, 2h, 24h. */
export const DURATION = /^[1-9][0-9]{0,6}(s|m|h|d)$/;
const duration = z.string().regex(DURATION, { message: "a duration such as 30s, 15m, 2h or 1d" });

export const batchProfileSchema = z
  .object({
    model: z.string().min(1).optional().describe("The model (group) for lines that name none."),
    max_tokens: z.number().int().positive().optional().describe("max_tokens for lines that set none."),
    concurrency: z.number().int().positive().max(1000).default(4).describe("Items of one batch in flight at once."),
    priority: z.number().int().min(0).max(100).default(0).describe("Higher runs first when batches wait for capacity; equal priorities run oldest first."),
    completion_window: duration.optional().describe("Replaces the request's completion_window (OpenAI accepts only 24h): 30s, 2h, 24h, 7d..."),
    retries: z.number().int().min(0).max(20).default(2).describe("Retries per item after a retryable failure (429, 5xx, timeout, no healthy deployment), with backoff."),
    redact_pii: z.boolean().default(false).describe("Remove emails, phone numbers, card numbers, IBANs and IP addresses from the output file."),
    overflow_provider: z.string().min(1).optional().describe("An openai-type provider whose Batch API takes what the deadline needs (cloud overflow)."),
  })
  .strict();
export type BatchProfile = z.infer<typeof batchProfileSchema>;

export const batchSchema = z
  .object({
    files_dir: z.string().min(1).optional().describe("Where uploaded and result files are kept (default: <data dir>/files)."),
    max_file_mb: z.number().positive().max(1024).default(200).describe("Largest file POST /v1/files accepts (MB)."),
    max_line_kb: z
      .number()
      .int()
      .positive()
      .max(64 * 1024)
      .default(4096)
      .describe("Longest line of a batch input file (KB); longer lines are rejected at upload with their line number (a line is held whole in memory when it is read)."),
    max_total_mb: z
      .number()
      .positive()
      .default(10_240)
      .describe("Most bytes all stored batch files may take together (MB; uploads and results): an upload beyond it is refused with 413 until files are deleted."),
    upload_idle_s: seconds
      .default(30)
      .describe("An upload that sends nothing for this long is cut off and its partial file removed (s)."),
    max_requests: z.number().int().positive().default(50_000).describe("Most lines one batch's input file may hold."),
    provider_concurrency: z
      .number()
      .int()
      .positive()
      .default(2)
      .describe("Batch items in flight at once per provider (a provider's own entry in `providers` wins)."),
    providers: z.record(z.string().min(1), z.number().int().min(0)).default({}).describe("Per-provider batch concurrency caps (0: no batch work there)."),
    interactive_threshold: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("Batch items start on a provider only while at most this many interactive requests are in flight there: batch work yields to interactive traffic."),
    interactive_quiet_ms: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(50)
      .describe("After an interactive request starts or ends on a provider, batch items start there only once it has been quiet this long (ms; 0: at once)."),
    interactive_batch_cap: z
      .number()
      .int()
      .min(0)
      .default(1)
      .describe("Batch items in flight per provider while it has had interactive traffic in the last second (when below its cap)."),
    retry_backoff_s: seconds.default(1).describe("First retry's backoff; it doubles per retry (with jitter) up to 60 s."),
    preempt: z
      .boolean()
      .default(false)
      .describe(
        "When an interactive request arrives on a provider with batch items running, cancel the newest of them (it runs again later, its attempt given back). " +
          "For providers whose every slot the batch cap may fill: the interactive request then waits for no batch item.",
      ),
  })
  .strict();
export type BatchConfig = z.infer<typeof batchSchema>;

export const configSchema = z
  .object({
    server: serverSchema.default(serverSchema.parse({})),
    providers: z.record(z.string().min(1), providerSchema).default({}),
    models: z.record(z.string().min(1), modelGroupSchema).default({}),
    router: routerSchema.default(routerSchema.parse({})),
    lab: labSchema.default(labSchema.parse({})),
    store: storeSchema.default(storeSchema.parse({})),
    budgets: budgetsSchema.default(budgetsSchema.parse({})),
    gate: gateSchema.default(gateSchema.parse({})),
    batch: batchSchema.default(batchSchema.parse({})),
    batch_profiles: z.record(z.string().min(1), batchProfileSchema).default({}).describe("Named batch profiles; a batch chooses one by metadata.profile."),
  })
  .strict();

export type LabgateConfig = z.infer<typeof configSchema>;
export type RouterConfig = LabgateConfig["router"];
export type CircuitBreakerConfig = RouterConfig["circuit_breaker"];
export type ServerConfig = LabgateConfig["server"];
export type StoreConfig = LabgateConfig["store"];
export type LabConfig = LabgateConfig["lab"];
