// Asks "are you sure?" before a state-changing action, in a modal <dialog>: focus
// moves into it (the confirm button), Escape or Cancel says no, Enter says yes, and
// focus goes back to what opened it when it closes.
import { useEffect, useId, useRef, type ReactNode } from "react";

export interface ConfirmRequest {
  title: string;
  /** What will happen, in a sentence or two. */
  message: ReactNode;
  /** The confirm button's text, a verb ("Disable", "Unload"). */
  confirmLabel: string;
  /** Destructive actions get the danger style. */
  danger?: boolean;
}

export function ConfirmDialog(props: { request: ConfirmRequest | null; onConfirm: () => void; onCancel: () => void }) {
  const { request, onConfirm, onCancel } = props;
  const dialog = useRef<HTMLDialogElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);
  const opener = useRef<Element | null>(null);
  const titleId = useId();
  const messageId = useId();

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (request && !d.open) {
      opener.current = document.activeElement;
      d.showModal();
      confirmButton.current?.focus();
    } else if (!request && d.open) {
      d.close();
    }
  }, [request]);

  // Back to the button that asked, so a keyboard user carries on where they were.
  const restoreFocus = () => {
    const el = opener.current;
    opener.current = null;
    if (el instanceof HTMLElement && el.isConnected) el.focus();
  };

  return (
    <dialog
      ref={dialog}
      className="confirm-dialog"
      aria-labelledby={titleId}
      aria-describedby={messageId}
      onCancel={(e) => {
        // Escape: close through React state, so the dialog and the page agree.
        e.preventDefault();
        onCancel();
      }}
      onClose={restoreFocus}
    >
      {request && (
        <form
          method="dialog"
          onSubmit={(e) => {
            e.preventDefault();
            onConfirm();
          }}
        >
          <h2 id={titleId}>{request.title}</h2>
          <div id={messageId}>{request.message}</div>
          <div className="actions">
            <button type="button" onClick={onCancel}>
              Cancel
            </button>
            <button type="submit" ref={confirmButton} className={request.danger ? "danger" : "primary"}>
              {request.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}
