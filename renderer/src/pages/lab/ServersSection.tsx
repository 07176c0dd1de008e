// Servers found: what lab.discovery's background probes found answering on the
// machine's usual ports, what each was classified as and why (its evidence), and
// which provider serves it.
import { formatRelative } from "../../format.ts";
import { useServers } from "../lab-queries.ts";
import type { FoundServerView } from "../lab-types.ts";
import { QueryProblem } from "./QueryProblem.tsx";
import { useNow } from "./useNow.ts";

const KIND_NAMES: Record<string, string> = { ollama: "Ollama", llamacpp: "llama.cpp", vllm: "vLLM", "openai-compatible": "OpenAI-compatible" };

/** The probe that answered (what the classification rests on), else the last one asked. */
function decisive(evidence: string[]): string {
  return evidence.find((e) => / -> 2\d\d\b/.test(e)) ?? evidence[evidence.length - 1] ?? "";
}

function ServerState({ s }: { s: FoundServerView }) {
  if (!s.answering) return <span className="badge bad">not answering</span>;
  if (!s.healthy) return <span className="badge warn">unhealthy</span>;
  return <span className="badge ok">answering</span>;
}

function ProviderCell({ s }: { s: FoundServerView }) {
  if (!s.provider) return <span className="muted">none{s.kind === null ? " (not an inference server)" : ""}</span>;
  return (
    <>
      <span className="mono">{s.provider}</span> <span className="muted">({s.discovered ? "added by discovery" : "from the config"})</span>
    </>
  );
}

export function ServersSection() {
  const q = useServers();
  const now = useNow(5000);
  const servers = q.data?.data ?? [];
  return (
    <section aria-labelledby="lab-servers" className="lab-section">
      <h2 id="lab-servers">Servers found</h2>
      <QueryProblem query={q} what="the servers found" />
      {q.isPending ? (
        <p className="muted">Reading servers…</p>
      ) : servers.length === 0 ? (
        <div className="panel lab-empty">
          <p>
            <strong>No inference servers found.</strong>
          </p>
          <p className="muted">
            labgate probes the hosts and ports in <code>lab.discovery</code> of its config (by default 127.0.0.1 on Ollama's, llama.cpp's, vLLM's, LM Studio's and
            Jan's usual ports) every few seconds. Start a server there, or add its host and port to <code>lab.discovery</code>.
          </p>
        </div>
      ) : (
        <div className="lab-table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Address</th>
                <th scope="col">State</th>
                <th scope="col">Used by provider</th>
                <th scope="col">Models</th>
                <th scope="col">Evidence</th>
                <th scope="col">Last seen</th>
              </tr>
            </thead>
            <tbody>
              {servers.map((s) => (
                <tr key={`${s.host}:${s.port}`} data-testid={`server-${s.host}:${s.port}`}>
                  <td>
                    <strong>{s.kind ? (KIND_NAMES[s.kind] ?? s.kind) : "Unknown"}</strong>
                    {s.version && <span className="muted"> {s.version}</span>}
                  </td>
                  <td className="mono">
                    {s.host}:{s.port}
                  </td>
                  <td>
                    <ServerState s={s} />
                  </td>
                  <td>
                    <ProviderCell s={s} />
                  </td>
                  <td>
                    {s.models.length === 0 ? (
                      <span className="muted">—</span>
                    ) : (
                      <ul className="lab-names mono">
                        {s.models.map((m) => (
                          <li key={m}>{m}</li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td className="lab-wrap">
                    {s.evidence.length === 0 ? (
                      <span className="muted">—</span>
                    ) : (
                      <details>
                        <summary>
                          <span className="lab-evidence-summary mono">{decisive(s.evidence)}</span>
                        </summary>
                        <ul className="lab-evidence mono">
                          {s.evidence.map((e, i) => (
                            <li key={i}>{e}</li>
                          ))}
                        </ul>
                      </details>
                    )}
                  </td>
                  <td className="muted">{formatRelative(s.last_seen, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
