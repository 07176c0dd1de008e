// The dashboard's frame: navigation (hash routes, so /ui serves one file), the
// "gateway unreachable" banner and the admin-key dialog; each page in pages/.
import { lazy, Suspense, useEffect, useState, type ReactNode } from "react";
import { useLiveStatus, useServices } from "./context.tsx";
import { KeyDialog } from "./components/KeyDialog.tsx";
import { Overview } from "./pages/Overview.tsx";

// The overview is in the first file; every other page is its own chunk, loaded when
// first opened. The Routes page alone brings @xyflow/react: the first paint of the
// overview no longer waits for the whole dashboard's JavaScript to be parsed.
const RoutesPage = lazy(() => import("./pages/Routes.tsx").then((m) => ({ default: m.RoutesPage })));
const LabPage = lazy(() => import("./pages/Lab.tsx").then((m) => ({ default: m.LabPage })));
const RequestsPage = lazy(() => import("./pages/Requests.tsx").then((m) => ({ default: m.RequestsPage })));
const CostsPage = lazy(() => import("./pages/Costs.tsx").then((m) => ({ default: m.CostsPage })));
const BatchesPage = lazy(() => import("./pages/Batches.tsx").then((m) => ({ default: m.BatchesPage })));

export const PAGES: { path: string; title: string; render: () => ReactNode }[] = [
  { path: "overview", title: "Overview", render: () => <Overview /> },
  { path: "routes", title: "Routes", render: () => <RoutesPage /> },
  { path: "lab", title: "Lab", render: () => <LabPage /> },
  { path: "requests", title: "Requests", render: () => <RequestsPage /> },
  { path: "costs", title: "Costs", render: () => <CostsPage /> },
  { path: "batches", title: "Batches", render: () => <BatchesPage /> },
];

function currentPath(): string {
  const p = location.hash.replace(/^#\/?/, "").split("?")[0] ?? "";
  return PAGES.some((x) => x.path === p) ? p : "overview";
}

function useHashPath(): string {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const update = () => setPath(currentPath());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return path;
}

function UnreachableBanner() {
  const { client } = useServices();
  const [reachable, setReachable] = useState(true);
  useEffect(() => client.onReachable(setReachable), [client]);
  const live = useLiveStatus();
  if (reachable && live !== "down") return null;
  return (
    <div className="banner banner-error" role="alert" data-testid="unreachable-banner">
      {reachable ? "The live event stream dropped; reconnecting…" : "The gateway cannot be reached. Retrying; this page recovers by itself when it is back."}
    </div>
  );
}

export function App() {
  const path = useHashPath();
  const page = PAGES.find((p) => p.path === path)!;
  useEffect(() => {
    document.title = `${page.title} · labgate`;
  }, [page]);
  return (
    <>
      <header className="topbar">
        <a className="brand" href="#/overview">
          labgate
        </a>
        <nav aria-label="Pages">
          {PAGES.map((p) => (
            <a key={p.path} href={`#/${p.path}`} aria-current={p.path === path ? "page" : undefined}>
              {p.title}
            </a>
          ))}
        </nav>
      </header>
      <UnreachableBanner />
      <main id="main" data-page={page.path}>
        <Suspense fallback={<p className="muted">Loading {page.title}…</p>}>{page.render()}</Suspense>
      </main>
      <KeyDialog />
    </>
  );
}
