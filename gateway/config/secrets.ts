// Secret references (`env:NAME`, `vault:PATH`) are resolved once at start.
// A secret that cannot be resolved makes its provider unavailable, never the gateway.

export type SecretResolution = { ok: true; value: string } | { ok: false; reason: string };

export interface SecretResolver {
  resolve(ref: string): SecretResolution;
}

export function createSecretResolver(env: NodeJS.ProcessEnv = process.env): SecretResolver {
  return {
    resolve(ref) {
      if (ref.startsWith("env:")) {
        const name = ref.slice(4);
        const value = env[name];
        if (value === undefined) return { ok: false, reason: `environment variable ${name} is not set` };
        return value ? { ok: true, value } : { ok: false, reason: `environment variable ${name} is empty` };
      }
      if (ref.startsWith("vault:")) {
        // Recognised as a reference; a Vault client is a later issue.
        return { ok: false, reason: `vault references are not supported yet (${ref})` };
      }
      return { ok: false, reason: "not a secret reference" };
    },
  };
}
