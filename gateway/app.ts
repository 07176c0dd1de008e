// The composition root: everything a gateway needs is built here and passed in.
// No module keeps global state, so tests can build as many gateways as they like.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import { pino, type Logger } from "pino";
import type { CompletionService } from "./completion/service.ts";
import { TrackedCompletionService } from "./completion/tracked.ts";
import type { LabgateConfig, ProviderConfig } from "./config/schema.ts";
import { createSecretResolver } from "./config/secrets.ts";
import { demoModelsDir } from "./config/defaults.ts";
import { defaultUiDir, uiRoutes } from "./api/ui.ts";
import { adminRoutes } from "./api/admin.ts";
import type { GatewayDeps, ProviderHealthBook } from "./api/deps.ts";
import { frameworkError, installErrorHandlers, installServerErrorAnswers, onClientError } from "./api/errors.ts";
import { exposureProblem, HostPolicy, installGuards, type GuardState } from "./api/guards.ts";
import { healthRoutes } from "./api/health.ts";
import { metricsRoutes } from "./api/metrics.ts";
import { v1Routes } from "./api/v1.ts";
import { batchesRoutes } from "./api/batches.ts";
import { filesRoutes } from "./api/files.ts";
import { BatchQueue } from "./batch/queue.ts";
import { startDiscovery } from "./lab/discovery.ts";
import { GpuMonitor } from "./lab/gpus.ts";
import { LaunchedFile } from "./lab/orphans.ts";
import { LabProcesses } from "./lab/processes.ts";
import { ServerDiscovery } from "./lab/servers.ts";
import { createAdapter, loadAdapterModules } from "./providers/factory.ts";
import { Redactor } from "./providers/redact.ts";
import { ProviderRegistry } from "./providers/registry.ts";
import type { HealthResult } from "./providers/types.ts";
import { Router } from "./router/router.ts";
import { ProviderRuntime } from "./router/runtime.ts";
import { openDatabase, type Db } from "./store/db.ts";
import { ProviderStateStore } from "./store/provider-state.ts";
import { IdSource } from "./store/ids.ts";
import { LogCeiling } from "./store/log-ceiling.ts";
import { logOutcomes } from "./store/outcome-log.ts";
import { todaysSpend } from "./store/spend.ts";
import { RequestLog } from "./store/request-log.ts";
import { Retention } from "./store/retention.ts";
import { createMetrics, type GatewayMetrics } from "./telemetry/metrics.ts";
import { providersView } from "./api/provider-status.ts";
import { BudgetBook, CLOUD_PROVIDER_TYPES, registerBudgetMetrics, startOfDay } from "./telemetry/budgets.ts";
import { EventHub } from "./telemetry/events.ts";
import { createLabMetrics, type LabMetrics } from "./telemetry/lab-metrics.ts";
import { countOutcomes } from "./telemetry/outcome-metrics.ts";
import { registerGpuMetrics } from "./telemetry/gpu-metrics.ts";
import { UpstreamMetrics } from "./telemetry/upstream-metrics.ts";
import { TrafficHistory } from "./telemetry/traffic-history.ts";

export interface GatewayOptions {
  config: LabgateConfig;
  /** Folder for labgate.db and other state. */
  dataDir: string;
  /** Default models folder for embedded providers that name none. */
  modelsDir: string;
  /** Where env: secrets come from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Log level (default "info"; "silent" in tests). */
  logLevel?: string;
  /** Health probe period for the providers panel (ms); 0 disables background probes. */
  healthIntervalMs?: number;
  /** Model discovery period for local providers (ms). */
  discoveryIntervalMs?: number;
  /** Period of the live events' traffic summary (ms, default 1000; 0: none). */
  eventSummaryMs?: number;
  /** Bucket width of the last hour's traffic at /admin/traffic (ms, default 10000; tests shorten it to see charts grow). */
  trafficBucketMs?: number;
  /** Probe the lab's hosts for running servers (lab.discovery); false turns it off whatever the config says (tests). */
  serverDiscovery?: boolean;
  /**
   * Prometheus' default process metrics (labgate_process_*: CPU, memory, GC, event-loop
   * lag). They register process-wide observers (a GC PerformanceObserver, an event-loop
   * delay monitor) that outlive the gateway, so only a process's one long-lived gateway
   * should turn them on: `labgate serve` does; tests and other embedders leave them off (default).
   */
  defaultMetrics?: boolean;
  /**
   * The GPU monitor: nvidia-smi (a name looked up on env's PATH, or a path) read every
   * intervalMs (default 5000), the inventory every inventoryIntervalMs (default 300000);
   * false: no GPU monitoring (an empty list).
   */
  gpu?: false | { nvidiaSmi?: string; intervalMs?: number; inventoryIntervalMs?: number };
  /** Period of the vLLM / llama.cpp metrics scrapes (ms, default 10000); 0: none. */
  upstreamMetricsIntervalMs?: number;
  /** The built dashboard served at /ui (default: renderer/dist beside the sources, when built); false: none. */
  uiDir?: string | false;
}

export interface Gateway {
  app: FastifyInstance;
  router: Router;
  /** Every provider and its events (added, removed, health, enabled, breaker, panic, models). */
  registry: ProviderRegistry;
  /** Every caller of the router goes through it: it emits one outcome per request. */
  completions: TrackedCompletionService;
  requestLog: RequestLog;
  /** Keeps the request log under store.max_log_mb, oldest rows first, on its own timer. */
  logCeiling: LogCeiling;
  /** Deletes request-log rows and analytics rollups older than store.retention_days, on its own timer. */
  retention: Retention;
  metrics: GatewayMetrics;
  /** The lab's live events (GET /admin/events); the supervisor, GPUs and budgets publish there too. */
  events: EventHub;
  /** The lab's metric names; the batch queue sets its batch_* figures there. */
  labMetrics: LabMetrics;
  /** The machine's GPUs (GET /admin/lab/gpus, labgate_gpu_*); on() tells of changes. */
  gpus: GpuMonitor;
  db: Db;
  /** The local batch queue (/v1/files, /v1/batches) and its worker. */
  batches: BatchQueue;
  log: Logger;
  /** Starts listening; resolves to the base URL (http://host:port). */
  listen(host?: string, port?: number): Promise<string>;
  /** Finishes in-flight requests, flushes the log, closes adapters and the database. */
  close(): Promise<void>;
}

export const VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

export async function buildGateway(opts: GatewayOptions): Promise<Gateway> {
  const { config } = opts;
  const log = pino({
    level: opts.logLevel ?? "info",
    base: { service: "labgate" },
    // Secrets never reach the logs.
    redact: { paths: ["req.headers.authorization", "req.headers['x-api-key']", "req.headers['api-key']", "*.api_key", "*.apiKey"], censor: "[REDACTED]" },
  });
  const db = openDatabase(join(opts.dataDir, "labgate.db"));
  const requestLog = new RequestLog(db, { onError: (err) => log.error({ err }, "request log write failed; rows kept for retry") });
  // The log's ceiling: past store.max_log_mb its oldest rows go, in small steps off the request path.
  const logCeiling = new LogCeiling(db, {
    maxBytes: config.store.max_log_mb * 1024 * 1024,
    onTrim: (rows, bytes) => log.debug({ rows, log_mb: Math.round(bytes / 1048576) }, "request log trimmed to its ceiling"),
    onError: (err) => log.error({ err }, "request log trim failed"),
  });
  logCeiling.start();
  // Retention: rows older than store.retention_days go, in small steps off the request path, and the file gives the space back.
  const retention = new Retention(db, {
    retentionDays: config.store.retention_days,
    onPurge: (r) => log.debug({ rows: r.rows, rollups: r.rollups, pages_freed: r.pagesFreed }, "request log: rows past retention deleted"),
    onError: (err) => log.error({ err }, "request log retention failed"),
  });
  retention.start();
  const providerState = new ProviderStateStore(db);
  const toggles = providerState.load();
  const metrics = createMetrics({ defaultMetrics: opts.defaultMetrics === true });
  const secrets = createSecretResolver(opts.env ?? process.env);
  // The desktop app unpacks the demo model out of its asar and says where (LABGATE_DEMO_MODELS_DIR).
  const demoDir = demoModelsDir(opts.env ?? process.env);
  const events = new EventHub({ summaryMs: opts.eventSummaryMs });
  // Every provider, from the config, discovery or a launched server, and its events.
  const registry = new ProviderRegistry();
  // Servers labgate runs itself (providers with launch:). What an earlier labgate that was
  // killed left running is stopped first: launched.json says what it started, and when.
  const launchedFile = new LaunchedFile(join(opts.dataDir, "launched.json"));
  for (const r of await launchedFile.reap()) log.warn({ process: r.name, pid: r.pid, command: r.command }, "stopped a server an earlier labgate left running");
  // Upstream error text reaches clients only cleaned: every resolved secret (added as resolved), tokens, paths, stacks.
  const redactor = new Redactor({ onFullText: (text, info) => log.debug({ ...info, upstream_message: text }, "upstream error (full text)") });
  // Launched servers' args, output and crash reasons are served redacted with the same secrets.
  const processes = new LabProcesses({ registry, events, log, file: launchedFile, env: opts.env ?? process.env, redactor });
  // Heavy adapter modules (the embedded engine's, Ollama's) only for configurations that have such a provider.
  const adapterModules = await loadAdapterModules(Object.values(config.providers).map((pc) => pc.type));
  // The one source of ids: request ids, and the response ids adapters make.
  const ids = new IdSource();

  /** A provider's runtime from its config: secrets resolved, adapter built, the operator's last toggle applied. */
  const buildProvider = (name: string, pc: ProviderConfig): ProviderRuntime => {
    const resolved: Record<string, string> = {};
    const problems: string[] = [];
    const refs: [string, string][] = [];
    if (pc.api_key) refs.push(["api_key", pc.api_key]);
    for (const [h, ref] of Object.entries(pc.headers ?? {})) refs.push([`header:${h}`, ref]);
    for (const [field, ref] of refs) {
      const r = secrets.resolve(ref);
      if (r.ok) {
        resolved[field] = r.value;
        redactor.add(r.value);
      } else problems.push(`${field === "api_key" ? "api_key" : field}: ${r.reason}`);
    }
    const enabled = toggles.get(name) ?? pc.enabled ?? true;
    if (problems.length > 0) {
      log.warn({ provider: name, reason: problems.join("; ") }, "provider unavailable: secret not resolved");
      return new ProviderRuntime({ name, config: pc, unavailableReason: `secret not resolved (${problems.join("; ")})`, enabled });
    }
    try {
      const adapter = createAdapter({ name, config: pc, secrets: resolved, defaultModelsDir: opts.modelsDir, demoModelsDir: demoDir, modules: adapterModules, redactor, ids });
      // A launched server's traffic waits for it to be healthy (or starts it, on demand).
      return new ProviderRuntime({ name, config: pc, adapter: pc.launch ? processes.add(name, pc, adapter) : adapter, enabled });
    } catch (err) {
      log.warn({ provider: name, err: (err as Error).message }, "provider unavailable: adapter could not start");
      return new ProviderRuntime({ name, config: pc, unavailableReason: (err as Error).message, enabled });
    }
  };
  const runtimes = Object.entries(config.providers).map(([name, pc]) => buildProvider(name, pc));

  // The config is one source of providers; launched servers another; discovery adds its own later.
  for (const r of runtimes) registry.add(r, config.providers[r.name]?.launch ? "supervisor" : "config");
  const discoveredModels = new Map<string, string[]>();
  registry.on((e) => {
    if (e.type === "enabled") {
      // Operators' toggles (admin API, dashboard, tray) survive restarts.
      providerState.setEnabled(e.provider, e.enabled);
      log.info({ provider: e.provider, enabled: e.enabled }, "provider toggled");
    } else if (e.type === "models") {
      // Discovered models that went away take their metric series along.
      const now = new Set(e.models);
      for (const model of discoveredModels.get(e.provider) ?? []) if (!now.has(model) && !router.group(model)) {
          metrics.forgetModel(model);
          labMetrics.forgetModel(model);
        }
      discoveredModels.set(e.provider, e.models);
    } else if (e.type === "health") {
      log.info({ provider: e.provider, healthy: e.healthy, detail: e.detail }, e.healthy ? "provider healthy" : "provider unhealthy");
    }
  });
  // Budgets: today's spend (after a restart, from the request log), ceilings said once, cloud closed when asked.
  const budgets = new BudgetBook({
    config: config.budgets,
    onCross: (s) => {
      log.warn({ kind: s.kind, name: s.name, measure: s.measure, value: s.value, limit: s.limit, on_exceed: config.budgets.on_exceed }, "budget crossed");
      events.publish("budget", s);
    },
  });
  budgets.seed(todaysSpend(db, startOfDay(Date.now())));
  registerBudgetMetrics(metrics.registry, budgets);
  const router = new Router(config, registry, {
    blocked: (d) => (budgets.blockOverflow && CLOUD_PROVIDER_TYPES.has(d.provider.type) ? "budget_exceeded" : undefined),
    observer: {
      onAttempt: (d, errorClass) => metrics.child.attempts(d.provider.name, errorClass ?? "ok").inc(),
      onTtfb: (d, ms) => metrics.child.ttfb(d.provider.name).observe(ms / 1000),
      onBreakerChange: (d, from, to) => log.warn({ deployment: d.id, provider: d.provider.name, from, to }, "circuit breaker changed state"),
      onFallbackResult: (model, success) => metrics.fallbacks.inc({ model, result: success ? "success" : "failure" }),
      onPanicChange: (model, panic, h) => {
        metrics.groupPanic.set({ model }, panic ? 1 : 0);
        const detail = { model, enabled_deployments: h.enabled, breaker_not_open: h.eligible };
        if (panic) log.warn(detail, "model group entered panic: too few deployments with a closed breaker, so open breakers are ignored");
        else log.info(detail, "model group left panic");
      },
    },
  });

  // Servers already running on the lab's machines become providers (source "discovery");
  // the models of every local provider become model groups.
  const servers = new ServerDiscovery({
    config: { ...config.lab.discovery, enabled: config.lab.discovery.enabled && opts.serverDiscovery !== false },
    registry,
    makeProvider: buildProvider,
    log,
  });
  const completions = new TrackedCompletionService({
    router,
    ids,
    onInternalError: (err) => log.error({ err }, "request failed inside labgate"),
  });
  // What happened to each request has one source; these are its consumers.
  completions.onOutcome(logOutcomes(requestLog));
  completions.onOutcome(countOutcomes(metrics));
  // Live events for the dashboard and the tray: registry changes, and a summary of outcomes each second.
  registry.on((e) => events.fromRegistry(e));
  completions.onOutcome((o) => events.observe(o));
  // The last hour per provider in 10 s buckets, for the dashboard's overview (GET /admin/traffic).
  const traffic = new TrafficHistory({ bucketMs: opts.trafficBucketMs });
  completions.onOutcome((o) => traffic.observe(o));
  // The lab's own metric names (router_*, billing_*, provider_up, batch_*).
  const labMetrics = createLabMetrics(metrics.registry, { providers: registry, router });
  // The batch queue: a caller of the completion service at lower priority (interactive first).
  const batches = new BatchQueue({ db, dataDir: opts.dataDir, config, router, completions, events, log, registry: metrics.registry, labMetrics, secrets });
  completions.onOutcome(labMetrics.observe);
  completions.onOutcome((o) => budgets.observe(o));
  // The machine's GPUs, read in the background (systeminformation rarely, nvidia-smi every few seconds).
  const gpuMonitor = new GpuMonitor({ env: opts.env ?? process.env, log, ...(opts.gpu || {}) });
  registerGpuMetrics(metrics.registry, gpuMonitor);
  // GPU figures reach the dashboard and the tray as they change (the monitor reports changes only).
  gpuMonitor.on((gpus) => events.publish("gpu", { gpus }));
  // vLLM and llama.cpp servers' own figures (/metrics, /slots), scraped in the background and
  // re-exported as upstream_*; their history feeds the readiness gate (and `labgate gate`, from the file).
  const upstream = new UpstreamMetrics({
    providers: registry,
    metrics: metrics.registry,
    intervalMs: opts.upstreamMetricsIntervalMs,
    file: join(opts.dataDir, "upstream-metrics.json"),
    headers: (p): Record<string, string> => {
      const key = p.config.api_key ? secrets.resolve(p.config.api_key) : undefined;
      return key?.ok ? { authorization: `Bearer ${key.value}` } : {};
    },
    onError: (provider, err) => log.debug({ provider, err: (err as Error)?.message }, "upstream metrics scrape failed"),
  });

  const health: ProviderHealthBook = {
    async probe(name) {
      const p = registry.get(name);
      let h: HealthResult;
      if (!p?.adapter) h = { ok: false, detail: p?.unavailableReason ?? "unknown provider", latencyMs: 0 };
      else h = await p.adapter.health(AbortSignal.timeout(5000));
      const entry = { ...h, at: Date.now() };
      registry.recordHealth(name, entry);
      return entry;
    },
  };

  const requestTimeoutMs = Math.round(config.server.request_timeout_s * 1000);
  const app = Fastify({
    logger: false,
    bodyLimit: Math.round(config.server.body_limit_mb * 1024 * 1024),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, allowUnionTypes: true } },
    forceCloseConnections: "idle",
    // While closing, the guards answer 503 in OpenAI's shape (fastify's own 503 is not).
    return503OnClosing: false,
    // Receiving the request (headers and body) is bounded; answers and streams are not.
    requestTimeout: requestTimeoutMs,
    http: {
      // A request without Host gets the guards' 403 in OpenAI's shape, not Node's bare 400.
      requireHostHeader: false,
      headersTimeout: Math.min(requestTimeoutMs, Math.round(config.server.headers_timeout_s * 1000)),
      // Node checks those timeouts every 30 s by default: a 15 s limit could take 45.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.round(config.server.headers_timeout_s * 250))),
    },
    clientErrorHandler: onClientError,
    frameworkErrors: frameworkError,
  });
  installServerErrorAnswers(app.server);
  const masterKey = config.server.master_key ? secrets.resolve(config.server.master_key) : undefined;
  const adminKey = config.server.admin_key ? secrets.resolve(config.server.admin_key) : undefined;
  if (masterKey && !masterKey.ok) throw new Error(`server.master_key: ${masterKey.reason}`);
  if (adminKey && !adminKey.ok) throw new Error(`server.admin_key: ${adminKey.reason}`);
  redactor.add(masterKey?.ok ? masterKey.value : undefined, adminKey?.ok ? adminKey.value : undefined);

  const deps: GatewayDeps = {
    config,
    router,
    registry,
    servers,
    processes,
    monitor: gpuMonitor,
    events,
    labSnapshot: () => ({ ...providersView(registry, router, config.router), servers: servers.snapshot(), processes: processes.list(), gpus: gpuMonitor.snapshot(), budgets: budgets.statuses() }),
    completions,
    requestLog,
    db,
    upstream,
    traffic,
    batches,
    budgets,
    metrics,
    providerState,
    health,
    masterKey: masterKey?.ok ? masterKey.value : undefined,
    adminKey: adminKey?.ok ? adminKey.value : undefined,
    log,
    startedAt: Date.now(),
    version: VERSION,
  };
  installErrorHandlers(app, (err, req) => log.error({ err, url: req.url }, "unhandled error"));
  // Host, Origin and CORS checks before anything else, on every route.
  const hosts = new HostPolicy(config.server);
  const guardState: GuardState = { closing: false };
  installGuards(app, config.server, hosts, guardState);
  // Interactive requests are counted on every route, so batch work yields to them.
  batches.gate.track(app);
  await app.register(healthRoutes(deps));
  await app.register(uiRoutes(opts.uiDir === false ? undefined : (opts.uiDir ?? defaultUiDir())));
  await app.register(metricsRoutes(deps));
  await app.register(v1Routes(deps), { prefix: "/v1" });
  // LiteLLM's proxy also answers without the /v1 prefix; some tools rely on it.
  await app.register(v1Routes(deps), { prefix: "" });
  for (const prefix of ["/v1", ""]) {
    await app.register(filesRoutes(deps, batches), { prefix });
    await app.register(batchesRoutes(deps, batches), { prefix });
  }
  await batches.start();
  await app.register(adminRoutes(deps), { prefix: "/admin" });

  const discovery = startDiscovery(router, log, { intervalMs: opts.discoveryIntervalMs, graceMs: config.lab.discovery.grace_s * 1000 });
  // A server found (or back) has its models listed at once, not at the next round.
  registry.on((e) => {
    if ((e.type === "added" && e.source === "discovery") || (e.type === "health" && e.healthy)) void discovery.refresh();
  });
  servers.start();
  processes.startAll();
  if (opts.gpu !== false) gpuMonitor.start();
  if (opts.upstreamMetricsIntervalMs !== 0) upstream.start();
  const healthTimer =
    opts.healthIntervalMs === 0
      ? undefined
      : setInterval(() => {
          for (const name of registry.names()) void health.probe(name);
        }, opts.healthIntervalMs ?? 15_000);
  healthTimer?.unref();

  let closed = false;
  return {
    app,
    router,
    registry,
    completions,
    requestLog,
    logCeiling,
    retention,
    metrics,
    labMetrics,
    gpus: gpuMonitor,
    events,
    db,
    batches,
    log,
    async listen(host = config.server.host, port = config.server.port) {
      // Checked before binding, so nothing is exposed even for a moment.
      const exposed = exposureProblem(host, deps.masterKey, config.server);
      if (exposed) throw new Error(exposed);
      await servers.ready;
      await discovery.ready;
      await app.listen({ host, port });
      const addr = app.server.address();
      const p = typeof addr === "object" && addr ? addr.port : port;
      hosts.listening(host, p);
      const h = host.includes(":") ? `[${host}]` : host;
      return `http://${h}:${p}`;
    },
    async close() {
      if (closed) return;
      closed = true;
      guardState.closing = true;
      // Running batch items are cancelled and pending again for the next start.
      await batches.stop();
      servers.stop();
      gpuMonitor.stop();
      await upstream.stop();
      events.close();
      discovery.stop();
      if (healthTimer) clearInterval(healthTimer);
      // In-flight requests get server.shutdown_grace_s to finish; then their sockets are
      // closed, which cancels them the way a client that goes away does (logged as 499).
      const closing = app.close();
      // A keep-alive connection whose answer ends while closing would otherwise stay open until keepAliveTimeout.
      const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
      let deadline: NodeJS.Timeout | undefined;
      const graceMs = config.server.shutdown_grace_s * 1000;
      const finished = await Promise.race([closing.then(() => true), new Promise<boolean>((resolve) => (deadline = setTimeout(resolve, graceMs, false)))]);
      clearTimeout(deadline);
      clearInterval(reaper);
      if (!finished) {
        log.warn({ in_flight: completions.inFlight, grace_s: config.server.shutdown_grace_s }, "shutdown grace period over: cancelling in-flight requests");
        app.server.closeAllConnections();
        await closing;
      }
      // Every request's outcome (its log row) before the log is flushed; bounded in case one never ends.
      if (!(await completions.idle(5000))) log.warn({ in_flight: completions.inFlight }, "requests still unfinished at shutdown: their log rows are lost");
      // Launched servers stop with the gateway once its requests are done (gracefully, then forced after their stop timeout).
      await processes.close();
      requestLog.flush();
      logCeiling.stop();
      retention.stop();
      await Promise.allSettled(registry.list().map((r) => r.adapter?.close()));
      db.close();
    },
  };
}
