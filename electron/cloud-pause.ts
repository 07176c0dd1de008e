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
