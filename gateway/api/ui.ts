// GET /ui/: the dashboard (renderer/, built by Vite into renderer/dist), served as
// static files under a strict Content-Security-Policy: scripts, styles and
// connections from this origin only, no inline code, no framing. It reads only the
// admin API, with the admin key as a header; nothing here is a secret.
import fastifyStatic from "@fastify/static";
import type { FastifyPluginAsync } from "fastify";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ApiError } from "./errors.ts";
import { UI_CSP } from "./ui-csp.ts";

export { UI_CSP };

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": UI_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

/**
 * renderer/dist beside the sources: found by walking up from this file, so the
 * same code finds it whether it runs from gateway/ or from a build of it elsewhere.
 */
export function defaultUiDir(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = from, i = 0; i < 6; i++, dir = dirname(dir)) {
    const candidate = join(dir, "renderer", "dist");
    if (existsSync(join(candidate, "index.html"))) return candidate;
  }
  return undefined;
}

export const uiRoutes =
  (uiDir: string | undefined): FastifyPluginAsync =>
  async (app) => {
    // Only the root itself: fastify also routes an asterisk-form target (`GET *`) here.
    app.get("/", (request, reply) => (request.raw.url === "/" ? reply.redirect("/ui/", 302) : reply.callNotFound()));
    if (!uiDir) {
      // A clone that skipped the build still answers, and says how to fix it.
      app.get("/ui", (_request, reply) => reply.redirect("/ui/", 302));
      app.get("/ui/*", async () => {
        throw new ApiError(503, "The dashboard is not built. Run `npm run build:ui` (npm install and npm start do it for you).", {
          type: "server_error",
          code: "dashboard_not_built",
        });
      });
      return;
    }
    await app.register(fastifyStatic, {
      root: uiDir,
      prefix: "/ui/",
      redirect: true,
      serveDotFiles: false,
      index: ["index.html"],
      // Vite names assets by their content hash: they never change; index.html always may.
      setHeaders(reply, path) {
        for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
        reply.header("cache-control", path.endsWith(".html") ? "no-cache" : "public, max-age=31536000, immutable");
      },
      cacheControl: false,
    });
  };
