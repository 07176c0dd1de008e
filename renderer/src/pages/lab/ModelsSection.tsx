// Loaded models: what each server holds in memory now (Ollama's /api/ps, llama.cpp's
// and vLLM's one model, the embedded engine) and an Unload button where the server
// can free it.
import { useQueryClient } from "@tanstack/react-query";
import { useServices } from "../../context.tsx";
import { keys } from "../../queries.ts";
import { formatBytes, formatCount, formatPercent, formatRelative } from "../../format.ts";
import { useLoadedModels } from "../lab-queries.ts";
import type { LoadedModelView } from "../lab-types.ts";
import { useLabActions } from "./actions.tsx";
import { QueryProblem } from "./QueryProblem.tsx";
import { useNow } from "./useNow.ts";

function UnloadButton({ m }: { m: LoadedModelView }) {
  const { client } = useServices();
  const queries = useQueryClient();
  const { ask, busy } = useLabActions();
  const key = `model:${m.provider}:${m.model}`;
  if (!m.can_unload) {
    return <span className="muted lab-small">stop its process to free it</span>;
  }
  return (
    <button
      type="button"
      className="danger"
      // aria-disabled, not disabled: the button keeps the focus the dialog gives back to it.
      aria-disabled={busy(key) || undefined}
      aria-label={`Unload ${m.model} from ${m.provider}`}
      onClick={() =>
        ask({
          key,
          title: `Unload ${m.model}?`,
          message: (
            <p>
              {m.provider} frees the memory {m.model} holds{m.vram_bytes ? ` (${formatBytes(m.vram_bytes)} of VRAM)` : ""}. The next request for it loads it again,
              which takes a while.
            </p>
          ),
          confirmLabel: "Unload",
          danger: true,
          pending: `Unloading ${m.model} from ${m.provider}…`,
          failure: `Could not unload ${m.model} from ${m.provider}`,
          run: async () => {
            const r = await client.post<{ model: string; unloaded: string[] }>(
              `/admin/lab/models/${encodeURIComponent(m.model)}/unload?provider=${encodeURIComponent(m.provider)}`,
            );
            void queries.invalidateQueries({ queryKey: keys.models });
            return `${r.model} unloaded from ${r.unloaded.join(", ")}.`;
          },
        })
      }
    >
      Unload
    </button>
  );
}

export function ModelsSection() {
  const q = useLoadedModels();
  const now = useNow(5000);
  const models = q.data?.data ?? [];
  const errors = q.data?.errors ?? [];
  return (
    <section aria-labelledby="lab-models" className="lab-section">
      <h2 id="lab-models">Loaded models</h2>
      <QueryProblem query={q} what="the loaded models" />
      {errors.length > 0 && (
        <ul className="lab-notes">
          {errors.map((e) => (
            <li key={e.provider} className="warn">
              {e.provider} did not say what it has loaded: {e.message}
            </li>
          ))}
        </ul>
      )}
      {q.isPending ? (
        <p className="muted">Reading loaded models…</p>
      ) : models.length === 0 ? (
        <div className="panel lab-empty">
          <p>
            <strong>No models are loaded right now.</strong>
          </p>
          <p className="muted">
            Ollama, llama.cpp, vLLM and the embedded engine list what they hold in memory here; Ollama and the embedded engine load a model on its first request.
          </p>
        </div>
      ) : (
        <div className="lab-table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Provider</th>
                <th scope="col" className="num">
                  Size
                </th>
                <th scope="col" className="num">
                  In VRAM
                </th>
                <th scope="col" className="num">
                  Context
                </th>
                <th scope="col">Unloads by itself</th>
                <th scope="col">Action</th>
              </tr>
            </thead>
            <tbody>
              {models.map((m) => (
                <tr key={`${m.provider}/${m.model}`} data-testid={`model-${m.provider}-${m.model}`}>
                  <th scope="row" className="mono">
                    {m.model}
                  </th>
                  <td>
                    <span className="mono">{m.provider}</span> <span className="muted">({m.type})</span>
                  </td>
                  <td className="num">{formatBytes(m.size_bytes)}</td>
                  <td className="num">
                    {formatBytes(m.vram_bytes)}
                    {m.vram_bytes !== null && m.size_bytes ? <span className="muted"> ({formatPercent(m.vram_bytes, m.size_bytes)})</span> : null}
                  </td>
                  <td className="num">{formatCount(m.context_length)}</td>
                  <td className="muted">{m.expires_at ? formatRelative(m.expires_at, now) : "—"}</td>
                  <td>
                    <UnloadButton m={m} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
