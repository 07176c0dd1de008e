// Placeholder: filled in by its own change.
export function RoutesPage() {
  return <h1>Routes</h1>;
}
