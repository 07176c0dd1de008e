// The dashboard's frame: navigation (hash routes, so /ui serves one file), the
// "gateway unreachable" banner and the admin-key dialog; each page in pages/.
import { useEffect, useState, type ReactNode } from "react";
import { useLiveStatus, useServices } from "./context.tsx";
import { KeyDialog } from "./components/KeyDialog.tsx";
import { Overview } from "./pages/Overview.tsx";
import { RoutesPage } from "./pages/Routes.tsx";
import { LabPage } from "./pages/Lab.tsx";
import { RequestsPage } from "./pages/Requests.tsx";
import { CostsPage } from "./pages/Costs.tsx";
import { BatchesPage } from "./pages/Batches.tsx";

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
        {page.render()}
      </main>
      <KeyDialog />
    </>
  );
}
