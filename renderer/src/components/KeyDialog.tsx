// Asks for the admin key once, when the gateway answers 401. Kept in sessionStorage
// for this tab only; sent as a bearer header, never put in a URL.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useServices } from "../context.tsx";

export function KeyDialog() {
  const { client } = useServices();
  const [needed, setNeeded] = useState(false);
  const [value, setValue] = useState("");
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => client.onKeyNeeded(setNeeded), [client]);
  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (needed && !d.open) d.showModal();
    if (!needed && d.open) d.close();
  }, [needed]);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim() === "") return;
    client.setKey(value.trim());
    setValue("");
  };
  return (
    <dialog ref={dialog} aria-labelledby="key-title" onCancel={(e) => e.preventDefault()}>
      <form onSubmit={submit}>
        <h2 id="key-title">Admin key</h2>
        <p>This gateway has an admin key. Enter it once; it is kept for this browser tab only.</p>
        <label>
          Key <input type="password" autoComplete="off" autoFocus value={value} onChange={(e) => setValue(e.target.value)} />
        </label>
        <div className="actions">
          <button type="submit">Continue</button>
        </div>
      </form>
    </dialog>
  );
}
