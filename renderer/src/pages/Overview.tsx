// Placeholder: filled in by its own change.
export function Overview() {
  return <h1>Overview</h1>;
}
