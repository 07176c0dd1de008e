// Every state-changing button on the Lab page goes through here: it asks first
// (ConfirmDialog), runs the call, and says how it went in one status line (role
// "status", so screen readers hear it too), with the gateway's own error message
// when it refused.
import { createContext, useCallback, useContext, useMemo, useRef, useState, type ReactNode } from "react";
import { HttpError, UnreachableError } from "../../api.ts";
import { ConfirmDialog, type ConfirmRequest } from "../../components/ConfirmDialog.tsx";

export interface LabAction extends ConfirmRequest {
  /** Identifies the thing acted on, so its buttons are disabled while the call runs. */
  key: string;
  /** Shown while the call runs ("Stopping lab-llama…"). */
  pending: string;
  /** Leads the gateway's error message when the call fails ("Could not stop lab-llama"). */
  failure: string;
  /** Does it; resolves with the sentence that says it worked. */
  run: () => Promise<string>;
}

interface Outcome {
  kind: "pending" | "ok" | "error";
  text: string;
}

interface LabActions {
  ask(action: LabAction): void;
  busy(key: string): boolean;
}

const Ctx = createContext<LabActions | null>(null);

export function useLabActions(): LabActions {
  const c = useContext(Ctx);
  if (!c) throw new Error("LabActionsProvider is missing");
  return c;
}

function messageOf(err: unknown): string {
  if (err instanceof HttpError) return err.message;
  if (err instanceof UnreachableError) return "The gateway cannot be reached.";
  return (err as Error)?.message ?? String(err);
}

export function LabActionsProvider({ children }: { children: ReactNode }) {
  const [asking, setAsking] = useState<LabAction | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [running, setRunning] = useState<ReadonlySet<string>>(new Set());

  // Read by ask(), which stays the same function across renders.
  const runningNow = useRef(running);
  runningNow.current = running;
  // A button of a thing whose call still runs is aria-disabled (it keeps its focus), so this ignores it.
  const ask = useCallback((action: LabAction) => {
    if (!runningNow.current.has(action.key)) setAsking(action);
  }, []);
  const busy = useCallback((key: string) => running.has(key), [running]);

  const confirm = () => {
    const action = asking;
    if (!action) return;
    setAsking(null);
    setOutcome({ kind: "pending", text: action.pending });
    setRunning((s) => new Set(s).add(action.key));
    action.run().then(
      (text) => setOutcome({ kind: "ok", text }),
      (err: unknown) => setOutcome({ kind: "error", text: `${action.failure}: ${messageOf(err)}` }),
    ).finally(() =>
      setRunning((s) => {
        const next = new Set(s);
        next.delete(action.key);
        return next;
      }),
    );
  };

  const value = useMemo(() => ({ ask, busy }), [ask, busy]);
  return (
    <Ctx.Provider value={value}>
      {children}
      {/* Always in the page, even when empty: a live region must exist before its text changes to be announced. */}
      <div className="lab-outcome" data-kind={outcome?.kind ?? "none"}>
        <p role="status" data-testid="lab-status">
          {outcome && (
            <span className="lab-outcome-icon" aria-hidden="true">
              {outcome.kind === "ok" ? "✓" : outcome.kind === "error" ? "✕" : "…"}
            </span>
          )}
          {outcome?.text}
        </p>
        {outcome && outcome.kind !== "pending" && (
          <button type="button" className="lab-outcome-close" aria-label="Dismiss message" onClick={() => setOutcome(null)}>
            ×
          </button>
        )}
      </div>
      <ConfirmDialog request={asking} onConfirm={confirm} onCancel={() => setAsking(null)} />
    </Ctx.Provider>
  );
}
