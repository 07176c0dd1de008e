// The upstream servers' own figures, parsed from the exact bytes of ../shared/protocols:
// vLLM's /metrics under its old and new series names, llama.cpp's /metrics (the documented
// one and a real capture) and /slots.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { llamacppFigures, llamacppSlotsFigures, parsePrometheusText, vllmFigures } from "../../gateway/telemetry/upstream-metrics.ts";

const sample = (file: string): string => readFileSync(new URL(`../../../shared/protocols/${file}`, import.meta.url), "utf8");
/** A capture of llamacpp-real/: status line and headers, a blank line, the body. */
const body = (capture: string): string => capture.slice(capture.indexOf("\r\n\r\n") >= 0 ? capture.indexOf("\r\n\r\n") + 4 : capture.indexOf("\n\n") + 2);

const VLLM = sample("vllm-metrics.txt");
/** Only the series of one naming generation: drop every line (HELP, TYPE, samples) of the other's names. */
const without = (text: string, names: RegExp): string =>
  text
    .split("\n")
    .filter((l) => !names.test(l))
    .join("\n");
const OLD_ONLY = without(VLLM, /vllm:(kv_cache_usage_perc|prefix_cache_(hits|queries))/);
const NEW_ONLY = without(VLLM, /vllm:gpu_(cache_usage_perc|prefix_cache)/).replaceAll("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds");

describe("the Prometheus text parser", () => {
  it("reads every sample of vLLM's /metrics with its labels, and skips comments", () => {
    const samples = parsePrometheusText(VLLM);
    const lines = VLLM.split("\n").filter((l) => l && !l.startsWith("#"));
    expect(samples).toHaveLength(lines.length);
    expect(samples.find((s) => s.name === "vllm:cache_config_info")!.labels).toMatchObject({ enable_prefix_caching: "True", num_gpu_blocks: "29357", engine: "0" });
    expect(samples.find((s) => s.name === "vllm:time_to_first_token_seconds_bucket" && s.labels.le === "+Inf")!.value).toBe(140);
  });

  it("reads escaped label values, timestamps and special values", () => {
    const s = parsePrometheusText('a{x="q\\"uo\\\\te",y="l\\nn"} 1.5 1700000000000\nb +Inf\nc NaN\nd{} -2e3\n  \nnot a sample\n');
    expect(s.map((x) => [x.name, x.value])).toEqual([
      ["a", 1.5],
      ["b", Infinity],
      ["c", NaN],
      ["d", -2000],
    ]);
    expect(s[0]!.labels).toEqual({ x: 'q"uo\\te', y: "l\nn" });
  });
});

describe("vLLM figures", () => {
  const expected = {
    running: 8,
    waiting: 2,
    kvCacheUsage: 0.4231770833333333,
    prefixCacheHits: 61440,
    prefixCacheQueries: 98304,
    source: "metrics",
  };

  it("from a v0.10 dump that has both names (the new ones are read)", () => {
    const f = vllmFigures(parsePrometheusText(VLLM));
    expect(f).toMatchObject(expected);
    expect(f.ttft!.count).toBe(140);
    expect(f.ttft!.sum).toBeCloseTo(6.869689, 9);
    expect(f.ttft!.buckets.slice(0, 5)).toEqual([
      [0.001, 0],
      [0.005, 0],
      [0.01, 0],
      [0.02, 20],
      [0.04, 55],
    ]);
    expect(f.ttft!.buckets.at(-1)).toEqual([Infinity, 140]);
    expect(f.interTokenLatency!.count).toBe(1400);
  });

  it("from the old names only (gpu_cache_usage_perc, gpu_prefix_cache_*, time_per_output_token_seconds)", () => {
    expect(OLD_ONLY).not.toContain("vllm:kv_cache_usage_perc");
    const f = vllmFigures(parsePrometheusText(OLD_ONLY));
    expect(f).toMatchObject(expected);
    expect(f.interTokenLatency!.count).toBe(1400);
  });

  it("from the new names only (kv_cache_usage_perc, prefix_cache_*, inter_token_latency_seconds)", () => {
    expect(NEW_ONLY).not.toMatch(/vllm:gpu_/);
    const f = vllmFigures(parsePrometheusText(NEW_ONLY));
    expect(f).toMatchObject(expected);
    expect(f.interTokenLatency!.count).toBe(1400);
    expect(f.interTokenLatency!.buckets[1]).toEqual([0.025, 1061]);
  });

  it("prefers the new name when both are there with different values (a server mid-rename)", () => {
    const text = VLLM.replace(/^(vllm:gpu_prefix_cache_hits_total\{[^}]*\}) 61440\.0$/m, "$1 1.0");
    expect(vllmFigures(parsePrometheusText(text)).prefixCacheHits).toBe(61440);
  });

  it("from the docs' example output (elided with ... lines, no engine label)", () => {
    const f = vllmFigures(parsePrometheusText(sample("vllm-metrics-docs-excerpt.txt")));
    expect(f.running).toBe(8);
    expect(f.waiting).toBeNull();
    expect(f.ttft!.count).toBe(140);
    expect(f.ttft!.buckets.at(-1)).toEqual([0.1, 140]);
  });

  it("sums engines (data parallel) and averages their KV-cache usage", () => {
    const two = VLLM + VLLM.split("\n").filter((l) => l.startsWith("vllm:") && !l.startsWith("vllm:cache_config")).map((l) => l.replace('engine="0"', 'engine="1"').replace(/ 0\.4231770833333333$/, " 0.5768229166666667")).join("\n");
    const f = vllmFigures(parsePrometheusText(two));
    expect(f.running).toBe(16);
    expect(f.prefixCacheQueries).toBe(2 * 98304);
    expect(f.kvCacheUsage).toBeCloseTo(0.5, 12);
    expect(f.ttft!.count).toBe(280);
  });
});

describe("llama.cpp figures", () => {
  it("from the documented /metrics (no prompt-cache series)", () => {
    const f = llamacppFigures(parsePrometheusText(sample("llamacpp-metrics.txt")));
    expect(f).toEqual({
      running: 1,
      waiting: 0,
      kvCacheUsage: null,
      prefixCacheHits: null,
      prefixCacheQueries: null,
      ttft: null,
      interTokenLatency: null,
      source: "metrics",
    });
  });

  it("from a real llama-server's /metrics (--metrics), before and after requests: cached prompt tokens as prefix-cache hits", () => {
    const before = llamacppFigures(parsePrometheusText(body(sample("llamacpp-real/run2-metrics.txt"))));
    expect(before).toMatchObject({ running: 0, waiting: 0, prefixCacheHits: 0, prefixCacheQueries: 0 });
    const after = llamacppFigures(parsePrometheusText(body(sample("llamacpp-real/run2-metrics_after_requests.txt"))));
    // prompt_tokens_total counts the tokens not found in the cache.
    expect(after).toMatchObject({ running: 0, waiting: 0, prefixCacheHits: 73, prefixCacheQueries: 73 + 191 });
  });

  it("from /slots when /metrics is off: the slots processing now", () => {
    expect(llamacppSlotsFigures(JSON.parse(sample("llamacpp-slots.json")))).toMatchObject({ running: 2, waiting: null, source: "slots" });
    expect(llamacppSlotsFigures(JSON.parse(body(sample("llamacpp-real/run2-slots_after_requests.txt"))))).toMatchObject({ running: 0, source: "slots" });
    expect(llamacppSlotsFigures({ error: "nope" }).running).toBe(0);
  });
});
