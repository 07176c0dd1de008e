// Placeholder: filled in by its own change.
export function CostsPage() {
  return <h1>Costs</h1>;
}
