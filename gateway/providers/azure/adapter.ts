// Azure OpenAI: OpenAI's wire format behind deployment URLs, an api-version
// query parameter and an api-key header.
import { OpenAICompatibleAdapter, type OpenAIPath } from "../openai-compatible/adapter.ts";
import type { Redactor } from "../redact.ts";

export interface AzureOptions {
  name: string;
  /** https://<resource>.openai.azure.com */
  baseUrl: string;
  apiVersion: string;
  apiKey: string;
  /** The provider's `headers:` (sent with every request, after the api-key header). */
  extraHeaders?: Record<string, string>;
  redactor?: Redactor;
}

export function azureUrl(baseUrl: string, apiVersion: string, path: OpenAIPath, deployment: string): string {
  const root = baseUrl.replace(/\/+$/, "");
  const q = `api-version=${encodeURIComponent(apiVersion)}`;
  if (path === "models") return `${root}/openai/models?${q}`;
  return `${root}/openai/deployments/${encodeURIComponent(deployment)}/${path}?${q}`;
}

export function createAzureAdapter(opts: AzureOptions): OpenAICompatibleAdapter {
  return new OpenAICompatibleAdapter({
    name: opts.name,
    type: "azure",
    baseUrl: opts.baseUrl,
    authHeaders: { "api-key": opts.apiKey },
    ...(opts.extraHeaders ? { extraHeaders: opts.extraHeaders } : {}),
    urlFor: (path, deployment) => azureUrl(opts.baseUrl, opts.apiVersion, path, deployment),
    ...(opts.redactor ? { redactor: opts.redactor } : {}),
  });
}
