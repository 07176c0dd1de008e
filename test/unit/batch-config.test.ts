// The batch queue's config cross-references: a profile's overflow_provider must be a
// provider of type openai (its Files and Batch APIs), caught at load with its path.
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../gateway/config/load.ts";

const yaml = (overflow: string) => `
providers:
  local: {type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}
  cloud: {type: openai, api_key: env:OPENAI_API_KEY}
models:
  m: {deployments: [{provider: local, model: x}]}
batch_profiles:
  nightly: {concurrency: 2}
  rush: {completion_window: 2h, overflow_provider: ${overflow}}
`;

function problems(text: string) {
  const r = parseConfigText(text, "lab.yaml");
  if (r.ok) throw new Error("expected problems, config was accepted");
  return r.problems;
}

describe("batch_profiles config", () => {
  it("accepts an overflow_provider naming an openai provider", () => {
    const r = parseConfigText(yaml("cloud"), "lab.yaml");
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.batch_profiles.rush!.overflow_provider).toBe("cloud");
  });

  it("rejects an overflow_provider that is not defined, pointing at its line", () => {
    const text = yaml("clod");
    const ps = problems(text);
    expect(ps).toHaveLength(1);
    expect(ps[0]!.path).toBe("batch_profiles.rush.overflow_provider");
    expect(ps[0]!.message).toMatch(/provider "clod" is not defined under providers \(defined: local, cloud\)/);
    expect(ps[0]!.line).toBe(text.split("\n").findIndex((l) => l.includes("clod")) + 1);
  });

  it("rejects an overflow_provider of another type: only openai has the Batch API", () => {
    const ps = problems(yaml("local"));
    expect(ps.map((p) => [p.path, p.message])).toEqual([["batch_profiles.rush.overflow_provider", expect.stringMatching(/"local" is of type openai-compatible: the overflow needs an openai provider/)]]);
  });
});
