// Placeholder: filled in by its own change.
export function RequestsPage() {
  return <h1>Requests</h1>;
}
