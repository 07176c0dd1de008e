// The dashboard's build: served by the gateway at /ui from renderer/dist.
// `npm run dev` runs this with hot reload and proxies the admin API to a running
// gateway (LABGATE_URL, default http://127.0.0.1:4000).
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const gateway = process.env.LABGATE_URL ?? "http://127.0.0.1:4000";
// The gateway's Host check accepts its own name: the dev server forwards as the gateway.
const proxied = { target: gateway, changeOrigin: true };

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/ui/",
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline scripts or styles: the gateway's Content-Security-Policy allows 'self' only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 700,
  },
  server: {
    port: 5173,
    proxy: { "/admin": proxied, "/v1": proxied, "/health": proxied, "/metrics": proxied },
  },
});
