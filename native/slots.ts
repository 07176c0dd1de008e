// Admission for one model: `capacity` requests run (one per context sequence), up to
// `maxQueue` more wait in FIFO order, anything beyond is refused at once.

export class QueueFullError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueueFullError";
  }
}

interface Waiter {
  grant: (release: () => void) => void;
  fail: (err: unknown) => void;
  signal: AbortSignal;
  onAbort: () => void;
}

export class SlotGate {
  capacity: number;
  maxQueue: number;
  private running = 0;
  private readonly queue: Waiter[] = [];

  constructor(capacity: number, maxQueue: number) {
    this.capacity = Math.max(1, capacity);
    this.maxQueue = Math.max(0, maxQueue);
  }

  get active(): number {
    return this.running;
  }

  get waiting(): number {
    return this.queue.length;
  }

  /** Resolves with a release function (idempotent) once a slot is free. */
  acquire(signal: AbortSignal, describe = "model"): Promise<() => void> {
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.running < this.capacity && this.queue.length === 0) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(
        new QueueFullError(`${describe} is busy: ${this.running} requests running and ${this.queue.length} waiting (max_queue ${this.maxQueue})`),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        fail: reject,
        signal,
        onAbort: () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener("abort", waiter.onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Refuse everything waiting (engine closing). */
  failAll(err: unknown): void {
    for (const w of this.queue.splice(0)) {
      w.signal.removeEventListener("abort", w.onAbort);
      w.fail(err);
    }
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      this.pump();
    };
  }

  private pump(): void {
    while (this.running < this.capacity && this.queue.length > 0) {
      const w = this.queue.shift()!;
      w.signal.removeEventListener("abort", w.onAbort);
      this.running++;
      w.grant(this.releaser());
    }
  }
}
