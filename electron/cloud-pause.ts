// "Pause cloud overflow". The admin API has no switch for it, so the app does it with the
// provider toggles it has: pausing disables every enabled provider that is a cloud API
// (openai, azure, anthropic) or whose deployments are all overflow, and remembers which
// ones it turned off; un-pausing enables exactly those again (a provider the operator had
// turned off before the pause stays off). The list is kept in the app's settings, so a
// pause survives a restart of the app.
import { isCloudOverflow, type LabState } from "./lab-state.ts";

/** Providers to disable now. */
export function pausePlan(state: LabState): string[] {
  return state.providers.filter((p) => p.enabled && isCloudOverflow(p)).map((p) => p.name);
}

/** Providers to enable again: the ones the pause turned off that still exist and are still off. */
export function resumePlan(paused: readonly string[], state: LabState): string[] {
  return paused.filter((name) => state.providers.some((p) => p.name === name && !p.enabled));
}

export interface CloudToggle {
  /** Turn one provider on or off in the gateway (rejects when the gateway refuses or is gone). */
  setEnabled(name: string, enabled: boolean): Promise<void>;
  /** Remember the providers the pause holds off now (the app's settings). */
  save(paused: string[]): void;
}

/**
 * Carry out a pause (turn `names` off) or a resume (turn them on), saving the paused list
 * after each provider: if a later call fails, the ones already turned off are remembered, so
 * Resume is offered and turns them on again; a resume that fails part way keeps the ones still off.
 * Rejects with the first failure. Returns the paused list.
 */
export async function applyCloudPause(pause: boolean, names: readonly string[], paused: readonly string[], t: CloudToggle): Promise<string[]> {
  // A resume forgets names it has nothing to do for (the provider is gone, or already on again).
  let now = pause ? [...paused] : paused.filter((n) => names.includes(n));
  if (!pause && now.length !== paused.length) t.save(now);
  for (const name of names) {
    await t.setEnabled(name, !pause);
    now = pause ? [...now.filter((n) => n !== name), name] : now.filter((n) => n !== name);
    t.save(now);
  }
  return now;
}
