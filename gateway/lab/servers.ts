// Servers already running on the lab's machines: probed in the background on the
// usual ports, classified by what answers (classify.ts), and added to the provider
// registry as providers of source "discovery" without a restart. A server that
// stops answering turns unhealthy (its models leave after the grace period, see
// lab/discovery.ts); one that comes back is healthy again.
import type { Logger } from "pino";
import type { LabConfig, ProviderConfig, ProviderType } from "../config/schema.ts";
import type { ProviderRegistry } from "../providers/registry.ts";
import type { ProviderRuntime } from "../router/runtime.ts";
import { classifyServer, httpProbe, type Probe, type ServerKind } from "./classify.ts";

export interface FoundServer {
  host: string;
  port: number;
  /** null: something answered HTTP there, but no inference server labgate knows. */
  kind: ServerKind | null;
  version: string | null;
  /** The provider that serves it: a discovered one, or the configured provider already pointing there. */
  provider: string | null;
  /** True when the provider was added by discovery (false: the config already names this server). */
  discovered: boolean;
  answering: boolean;
  evidence: string[];
  first_seen: string;
  last_seen: string;
}

export interface ServerDiscoveryOptions {
  config: LabConfig["discovery"];
  registry: ProviderRegistry;
  /** Builds a provider runtime for a server found at base_url (the composition root knows how). */
  makeProvider(name: string, config: ProviderConfig): ProviderRuntime;
  log: Logger;
  /** How to ask an address (tests inject). */
  probe?: (origin: string) => Probe;
  /** Bound on the first round, so a slow host never delays the start. */
  firstRoundMs?: number;
}

const PROVIDER_TYPE: Record<ServerKind, ProviderType> = { ollama: "ollama", llamacpp: "llamacpp", vllm: "vllm", "openai-compatible": "openai-compatible" };
const NAME: Record<ServerKind, string> = { ollama: "ollama", llamacpp: "llama-cpp", vllm: "vllm", "openai-compatible": "openai-compatible" };
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

function sameServer(baseUrl: string | undefined, host: string, port: number): boolean {
  if (!baseUrl) return false;
  try {
    const u = new URL(baseUrl);
    const p = Number(u.port || (u.protocol === "https:" ? 443 : 80));
    const h = u.hostname;
    return p === port && (h === host || (LOOPBACK.has(h) && LOOPBACK.has(host)));
  } catch {
    return false;
  }
}

export class ServerDiscovery {
  private readonly opts: ServerDiscoveryOptions;
  private readonly found = new Map<string, FoundServer>();
  private readonly probeFor: (origin: string) => Probe;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly ac = new AbortController();
  /** Resolves after the first round (or its time bound); set by start(). */
  ready: Promise<void> = Promise.resolve();

  constructor(opts: ServerDiscoveryOptions) {
    this.opts = opts;
    this.probeFor = opts.probe ?? ((origin) => httpProbe(origin, 1500));
  }

  /** Probe now, then every interval_s (nothing when lab.discovery is off). */
  start(): void {
    if (!this.opts.config.enabled || this.timer) return;
    const first = this.refresh();
    this.ready = Promise.race([first, new Promise<void>((r) => setTimeout(r, this.opts.firstRoundMs ?? 2000).unref())]);
    this.timer = setInterval(() => void this.refresh(), this.opts.config.interval_s * 1000);
    this.timer.unref();
  }

  /** What was found where, with the evidence for each classification. */
  snapshot(): FoundServer[] {
    return [...this.found.values()].map((s) => ({ ...s, evidence: [...s.evidence] }));
  }

  /** One probing round over every host and port (rounds never overlap). */
  refresh(): Promise<void> {
    this.running ??= (async () => {
      const { hosts, ports } = this.opts.config;
      const targets = hosts.flatMap((host) => ports.map((port) => ({ host, port })));
      await Promise.allSettled(targets.map((t) => this.probeOne(t.host, t.port)));
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.ac.abort();
  }

  private async probeOne(host: string, port: number): Promise<void> {
    const key = `${host}:${port}`;
    const origin = `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
    const c = await classifyServer(this.probeFor(origin), this.ac.signal);
    if (this.ac.signal.aborted) return;
    const now = new Date().toISOString();
    const known = this.found.get(key);
    if (!c) {
      if (known?.answering) {
        known.answering = false;
        this.opts.log.info({ server: key, kind: known.kind, provider: known.provider }, "lab server stopped answering");
        if (known.provider && known.discovered) {
          this.opts.registry.recordHealth(known.provider, { ok: false, detail: `nothing answers at ${origin}`, latencyMs: 0, at: Date.now() });
        }
      }
      return;
    }
    const entry: FoundServer = known ?? {
      host,
      port,
      kind: c.kind,
      version: c.version ?? null,
      provider: null,
      discovered: false,
      answering: true,
      evidence: c.evidence,
      first_seen: now,
      last_seen: now,
    };
    const kindChanged = known !== undefined && known.kind !== c.kind;
    const cameBack = known !== undefined && !known.answering;
    Object.assign(entry, { kind: c.kind, version: c.version ?? null, answering: true, evidence: c.evidence, last_seen: now });
    this.found.set(key, entry);
    if (kindChanged && entry.provider && entry.discovered) {
      // Another product took the port: the old provider goes, the new one is added below.
      this.opts.registry.remove(entry.provider)?.adapter?.close().catch(() => {});
      entry.provider = null;
      entry.discovered = false;
    }
    if (c.kind === null) return;
    if (!entry.provider) this.attach(entry, origin, c.kind);
    else if (cameBack && entry.discovered) {
      this.opts.registry.recordHealth(entry.provider, { ok: true, detail: `answering at ${origin}`, latencyMs: 0, at: Date.now() });
      this.opts.log.info({ server: key, provider: entry.provider }, "lab server answering again");
    }
  }

  private attach(entry: FoundServer, origin: string, kind: ServerKind): void {
    const registry = this.opts.registry;
    // The config (or a supervised process) already names this server: that provider serves it.
    const existing = registry.list().find((p) => sameServer(p.config.base_url, entry.host, entry.port));
    if (existing) {
      entry.provider = existing.name;
      entry.discovered = registry.sourceOf(existing.name) === "discovery";
      return;
    }
    const base = NAME[kind];
    const name = registry.get(base) ? (LOOPBACK.has(entry.host) ? `${base}-${entry.port}` : `${base}-${entry.host}-${entry.port}`) : base;
    if (registry.get(name)) return; // taken by a configured provider elsewhere; leave it be
    const runtime = this.opts.makeProvider(name, { type: PROVIDER_TYPE[kind], base_url: origin });
    registry.add(runtime, "discovery");
    registry.recordHealth(name, { ok: true, detail: `answering at ${origin}`, latencyMs: 0, at: Date.now() });
    entry.provider = name;
    entry.discovered = true;
    this.opts.log.info({ server: `${entry.host}:${entry.port}`, kind, provider: name, version: entry.version }, "lab server found");
  }
}
