// A request's HTTP status as the tone of its badge.

/** ok (2xx), warn (429 and other 4xx), bad (5xx and anything else). */
export function statusTone(status: number): "ok" | "warn" | "bad" {
  if (status >= 200 && status < 300) return "ok";
  if (status >= 400 && status < 500) return "warn";
  return "bad";
}
