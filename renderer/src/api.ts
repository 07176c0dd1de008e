// The dashboard's only way to labgate: its admin API, with the admin key (when the
// gateway has one) sent as a bearer header. The key lives in sessionStorage for this
// tab's session: never in the URL, never in localStorage.
const KEY_STORAGE = "labgate.adminKey";

export class HttpError extends Error {
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, message: string, code?: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The gateway could not be reached at all (not an HTTP error). */
export class UnreachableError extends Error {}

type KeyListener = (needed: boolean) => void;

export class AdminClient {
  private key: string | null;
  private keyNeeded = false;
  private readonly keyListeners = new Set<KeyListener>();
  private readonly reachListeners = new Set<(reachable: boolean) => void>();
  private reachable = true;

  constructor(readonly base = "") {
    this.key = sessionStorage.getItem(KEY_STORAGE);
  }

  get hasKey(): boolean {
    return this.key !== null;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { ...extra, authorization: `Bearer ${this.key}` } : extra;
  }

  setKey(key: string): void {
    this.key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    this.setKeyNeeded(false);
  }

  forgetKey(): void {
    this.key = null;
    sessionStorage.removeItem(KEY_STORAGE);
  }

  onKeyNeeded(fn: KeyListener): () => void {
    this.keyListeners.add(fn);
    fn(this.keyNeeded);
    return () => this.keyListeners.delete(fn);
  }

  onReachable(fn: (reachable: boolean) => void): () => void {
    this.reachListeners.add(fn);
    fn(this.reachable);
    return () => this.reachListeners.delete(fn);
  }

  /** Called by the live event stream too: one banner for both. */
  setReachable(reachable: boolean): void {
    if (reachable === this.reachable) return;
    this.reachable = reachable;
    for (const fn of this.reachListeners) fn(reachable);
  }

  setKeyNeeded(needed: boolean): void {
    if (needed === this.keyNeeded) return;
    this.keyNeeded = needed;
    for (const fn of this.keyListeners) fn(needed);
  }

  /** GET or POST a JSON endpoint; throws HttpError (401 asks the user for the key) or UnreachableError. */
  async json<T>(path: string, init: { method?: "GET" | "POST" | "DELETE"; body?: unknown; signal?: AbortSignal } = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method: init.method ?? "GET",
        headers: this.headers(init.body !== undefined ? { "content-type": "application/json" } : {}),
        body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
        signal: init.signal,
        cache: "no-store",
      });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      this.setReachable(false);
      throw new UnreachableError("The gateway cannot be reached.");
    }
    this.setReachable(true);
    const text = await res.text();
    let body: unknown;
    try {
      body = text === "" ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const error = (body as { error?: { message?: string; code?: string } } | undefined)?.error;
      if (res.status === 401) {
        this.forgetKey();
        this.setKeyNeeded(true);
      }
      throw new HttpError(res.status, error?.message ?? `HTTP ${res.status}`, error?.code);
    }
    return body as T;
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>(path, { method: "POST", body });
  }
}
