// Batch profiles (config `batch_profiles`): a batch names one in metadata.profile. The
// profile fills in model and max_tokens where a line leaves them out, replaces the
// request's completion window, and sets the batch's concurrency, priority, retries and
// redaction. A batch without a profile gets these defaults.
import type { BatchProfile } from "../config/schema.ts";
import { windowSeconds } from "./duration.ts";
import type { StoredOptions } from "./worker.ts";

export const DEFAULT_OPTIONS: StoredOptions = { concurrency: 4, retries: 2, redact_pii: false };

export interface ResolvedProfile {
  name: string | null;
  options: StoredOptions;
  priority: number;
  completionWindow: string;
  windowS: number;
}

/** The batch's settings from its profile (undefined name: the defaults) and the requested window. */
export function resolveProfile(name: string | undefined, profiles: Record<string, BatchProfile>, requestedWindow: string): ResolvedProfile | { unknown: string } {
  if (name === undefined) {
    return { name: null, options: { ...DEFAULT_OPTIONS }, priority: 0, completionWindow: requestedWindow, windowS: windowSeconds(requestedWindow)! };
  }
  const p = Object.hasOwn(profiles, name) ? profiles[name] : undefined;
  if (!p) return { unknown: name };
  const completionWindow = p.completion_window ?? requestedWindow;
  const options: StoredOptions = { concurrency: p.concurrency, retries: p.retries, redact_pii: p.redact_pii };
  if (p.model !== undefined) options.model = p.model;
  if (p.max_tokens !== undefined) options.max_tokens = p.max_tokens;
  return { name, options, priority: p.priority, completionWindow, windowS: windowSeconds(completionWindow)! };
}
