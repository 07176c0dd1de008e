// A query that failed says so where its data would be (the banner covers an
// unreachable gateway; this covers the gateway's own errors).
import type { UseQueryResult } from "@tanstack/react-query";
import { UnreachableError } from "../../api.ts";

export function QueryProblem({ query, what }: { query: UseQueryResult<unknown>; what: string }) {
  if (!query.isError || query.error instanceof UnreachableError) return null;
  return (
    <p className="bad" role="alert">
      Could not read {what}: {query.error.message}
    </p>
  );
}
