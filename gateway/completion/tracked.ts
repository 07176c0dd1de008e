// The completion service as the composition root builds it: it also counts the requests
// whose outcome has not been emitted yet, so shutdown can wait for the log row of every
// request it cancelled before it flushes the log and closes the database.
import { CompletionService, type Completion, type CompletionRequest, type CompletionServiceOptions } from "./service.ts";

export class TrackedCompletionService extends CompletionService {
  private pending = 0;
  private waiters: (() => void)[] = [];

  constructor(opts: CompletionServiceOptions) {
    super(opts);
    // The first listener: by the time a waiter runs (a microtask later), every listener has seen the outcome.
    this.onOutcome(() => {
      if (--this.pending === 0) for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Requests asked for and not yet ended (each ends with exactly one outcome). */
  get inFlight(): number {
    return this.pending;
  }

  override complete(req: CompletionRequest): Promise<Completion> {
    this.pending++;
    return super.complete(req);
  }

  /** Resolves true once every request so far has emitted its outcome, or false after maxMs. */
  idle(maxMs: number): Promise<boolean> {
    if (this.pending <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(wake);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, maxMs);
      this.waiters.push(wake);
    });
  }
}
