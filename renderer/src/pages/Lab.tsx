// Placeholder: filled in by its own change.
export function LabPage() {
  return <h1>Lab</h1>;
}
