import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../gateway/config/load.ts";
import { configJsonSchema } from "../../gateway/config/write-schema.ts";
import { createSecretResolver } from "../../gateway/config/secrets.ts";

const example = readFileSync(new URL("../../resources/labgate.example.yaml", import.meta.url), "utf8");

function problems(yaml: string) {
  const r = parseConfigText(yaml, "lab.yaml");
  if (r.ok) throw new Error("expected problems, config was accepted");
  return r.problems;
}

describe("config loading", () => {
  it("loads the lab's example config exactly as written", () => {
    const r = parseConfigText(example, "example.yaml");
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Object.keys(r.config.providers)).toEqual(["ollama", "llama-cpp-native", "vllm", "embedded", "openai", "azure", "anthropic"]);
    expect(r.config.models["gpt-4-turbo"]!.deployments.map((d) => d.weight)).toEqual([60, 25, 15]);
    expect(r.config.models["llama3.1:latest"]!.fallbacks).toEqual(["llama-cpp-default", "gpt-oss:20b-cloud"]);
    expect(r.config.router.timeout_s).toBe(30);
    expect(r.config.router.retries).toBe(2);
    expect(r.config.router.circuit_breaker.error_rate_threshold).toBe(0.5);
    expect(r.config.router.circuit_breaker.panic_threshold).toBe(0.5);
    expect(r.config.router.total_timeout_s).toBe(600);
    expect(r.config.server.master_key).toBe("env:LABGATE_MASTER_KEY");
  });

  it("rejects a fallback naming a model that does not exist, pointing at its line", () => {
    const bad = example.replace('fallbacks: [llama-cpp-default, "gpt-oss:20b-cloud"]', 'fallbacks: [llama-cpp-default, "gpt-oss:120b"]');
    const [p, ...rest] = problems(bad);
    expect(rest).toEqual([]);
    expect(p!.message).toMatch(/fallback model "gpt-oss:120b" is not defined/);
    expect(p!.path).toBe("models.llama3.1:latest.fallbacks[1]");
    expect(p!.line).toBe(bad.split("\n").findIndex((l) => l.includes("gpt-oss:120b")) + 1);
    expect(p!.file).toBe("lab.yaml");
  });

  it("rejects a deployment on an undefined provider", () => {
    const bad = example.replace("{provider: azure,     model: gpt-4-turbo", "{provider: azur,     model: gpt-4-turbo");
    const ps = problems(bad);
    expect(ps).toHaveLength(1);
    expect(ps[0]!.message).toMatch(/provider "azur" is not defined/);
    expect(ps[0]!.path).toBe("models.gpt-4-turbo.deployments[1].provider");
  });

  it("rejects a cycle in fallback chains", () => {
    const bad = example.replace(
      "deployments: [{provider: llama-cpp-native, model: default, tier: local}]",
      'deployments: [{provider: llama-cpp-native, model: default, tier: local}]\n    fallbacks: ["llama3.1:latest"]',
    );
    const ps = problems(bad);
    expect(ps.map((p) => p.message)).toEqual([expect.stringMatching(/cycle: .*llama3\.1:latest.*llama-cpp-default.*/)]);
  });

  it("rejects a plain-text secret where a reference belongs, without echoing it", () => {
    const bad = example.replace("api_key: env:OPENAI_API_KEY", "api_key: sk-live-abcdef123456");
    const ps = problems(bad);
    expect(ps).toHaveLength(1);
    expect(ps[0]!.path).toBe("providers.openai.api_key");
    expect(ps[0]!.message).toMatch(/plain-text secret/);
    expect(JSON.stringify(ps)).not.toContain("sk-live-abcdef123456");
  });

  it("rejects unknown fields and wrong types, each with its own line", () => {
    const bad = example
      .replace("router: {timeout_s: 30, retries: 2}", "router: {timeout_s: thirty, retries: 2, retires: 3}")
      .replace("{type: vllm,", "{type: vllm, colour: blue,");
    const ps = problems(bad);
    expect(ps.map((p) => [p.path, p.message])).toEqual([
      ["providers.vllm.colour", 'unknown field "colour"'],
      ["router.timeout_s", "expected number"],
      ["router.retires", 'unknown field "retires"'],
    ]);
    const lines = bad.split("\n");
    expect(ps[0]!.line).toBe(lines.findIndex((l) => l.includes("colour: blue")) + 1);
    expect(ps[1]!.line).toBe(lines.findIndex((l) => l.startsWith("router:")) + 1);
  });

  it("rejects an unknown provider type and strategy, listing the allowed values", () => {
    const ps = problems("providers:\n  x: {type: lmstudio}\nmodels:\n  m:\n    strategy: fastest\n    deployments: [{provider: x, model: y}]\n");
    expect(ps[0]!.message).toMatch(/must be one of: ollama, llamacpp/);
    expect(ps[1]!.message).toMatch(/must be one of: weighted, least-busy/);
  });

  it("reports YAML syntax errors with their line", () => {
    const ps = problems("providers:\n  a: {type: openai\nmodels: {}\n");
    expect(ps[0]!.message).toMatch(/^YAML:/);
    expect(ps[0]!.line).toBeGreaterThanOrEqual(2);
  });

  it("an empty file is a valid gateway with defaults", () => {
    const r = parseConfigText("", "empty.yaml");
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.config.server.port).toBe(4000);
  });
});

describe("secrets", () => {
  it("resolves env: references and recognises vault: ones without resolving them yet", () => {
    const s = createSecretResolver({ OPENAI_API_KEY: "sk-test" });
    expect(s.resolve("env:OPENAI_API_KEY")).toEqual({ ok: true, value: "sk-test" });
    expect(s.resolve("env:MISSING")).toEqual({ ok: false, reason: "environment variable MISSING is not set" });
    expect(s.resolve("vault:secret/lab/providers/azure/api_key")).toMatchObject({ ok: false, reason: expect.stringMatching(/vault/) });
  });
});

describe("JSON schema for editors", () => {
  it("is the committed resources/schemas/labgate.schema.json, and describes every provider type", () => {
    const committed = JSON.parse(readFileSync(new URL("../../resources/schemas/labgate.schema.json", import.meta.url), "utf8"));
    expect(committed).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
    const types = committed.properties.providers.additionalProperties.properties.type.enum;
    expect(types).toEqual(expect.arrayContaining(["ollama", "llamacpp", "vllm", "embedded", "openai", "azure", "anthropic"]));
    expect(committed.properties.providers.additionalProperties.additionalProperties).toBe(false);
  });
});
