// GET /admin/budgets: every configured budget with today's figure (telemetry/budgets.ts
// BudgetBook.statuses(): per tier a daily spend and a cost per 1k tokens, per provider a
// daily spend), what the dashboard's costs page sets against each tier's spend. Registered
// under /admin: the admin key guards it.
import type { FastifyPluginAsync } from "fastify";
import type { GatewayDeps } from "./deps.ts";

export const budgetRoutes =
  (deps: GatewayDeps): FastifyPluginAsync =>
  async (app) => {
    app.get("/budgets", async () => {
      return { object: "list", on_exceed: deps.config.budgets.on_exceed, data: deps.budgets.statuses() };
    });
  };
