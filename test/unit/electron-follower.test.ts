// The tray against a real gateway, with no Electron: the main process's event follower
// (electron/admin-client.ts LabFollower) reads /admin/events, and each menu action is
// driven through the same admin client the app uses (Node's fetch, no Origin header).
// What the tray shows after each action is the tray model of the followed state.
import { afterEach, describe, expect, it } from "vitest";
import { AdminClient, LabFollower } from "../../electron/admin-client.ts";
import { pausePlan, resumePlan } from "../../electron/cloud-pause.ts";
import type { LabState } from "../../electron/lab-state.ts";
import { noticeFor, type LabNotice } from "../../electron/notifications.ts";
import { trayModel, type TrayMenuItem } from "../../electron/tray-model.ts";
import { startFakeOllama } from "../fixtures/fake-ollama.ts";
import { startFakeOpenAI } from "../fixtures/fake-openai.ts";
import { startGateway, type TestGateway } from "../fixtures/gateway.ts";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

const OPTS = { apiBase: "http://127.0.0.1:4000/v1", cloudPaused: false, startAtLogin: false, startAtLoginSupported: true };

function item(items: TrayMenuItem[], id: string): TrayMenuItem | undefined {
  for (const i of items) {
    if (i.id === id) return i;
    const inner = i.submenu && item(i.submenu, id);
    if (inner) return inner;
  }
  return undefined;
}

/** A follower of a gateway, with every notice it would have shown. */
function follow(gw: { url: string }, adminKey?: string) {
  const client = new AdminClient(gw.url, adminKey);
  const notices: LabNotice[] = [];
  const follower = new LabFollower({
    client,
    retryMs: 100,
    onState: (_s, e) => {
      const n = noticeFor(e.before, e.type, e.data);
      if (n) notices.push(n);
    },
  });
  follower.start();
  closers.push(() => follower.stop());
  const until = async (ok: (s: LabState) => boolean, what: string): Promise<LabState> => {
    for (let i = 0; i < 200; i++) {
      if (ok(follower.state)) return follower.state;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`never: ${what}; state: ${JSON.stringify(follower.state)}`);
  };
  return { client, follower, notices, until };
}

async function gateway(config: unknown, env: NodeJS.ProcessEnv = {}): Promise<TestGateway> {
  const gw = await startGateway(JSON.stringify(config), { env });
  closers.push(() => gw.close());
  return gw;
}

const chat = (gw: TestGateway, model: string) =>
  fetch(`${gw.v1}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hello there" }] }),
  });

describe("the tray following a real gateway", () => {
  it("shows its providers, and an Enabled click turns a provider off in the gateway and in the menu", async () => {
    const local = await startFakeOpenAI({ name: "local" });
    closers.push(() => local.close());
    const gw = await gateway({
      providers: { box: { type: "openai-compatible", base_url: local.v1 } },
      models: { m: { deployments: [{ provider: "box", model: "x" }] } },
    });
    const { client, follower, until } = follow(gw);
    await until((s) => s.connected && s.providers.length === 1, "the snapshot");
    const before = trayModel(follower.state, OPTS);
    expect(before.icon).toBe("healthy");
    const enabled = item(before.menu, "provider:box:enabled")!;
    expect(enabled).toMatchObject({ checked: true, action: { kind: "set-provider-enabled", provider: "box", enabled: false } });

    // The click: the admin call the app makes (no Origin header: the gateway's browser guard does not apply).
    await client.setProviderEnabled("box", false);
    await until((s) => s.providers[0]!.enabled === false, "the enabled event");
    const after = trayModel(follower.state, OPTS);
    expect(item(after.menu, "provider:box:enabled")!.checked).toBe(false);
    expect(after.icon).toBe("down"); // its only provider is off: nothing can serve
    expect((await chat(gw, "m")).status).not.toBe(200);
  });

  it("Pause cloud overflow turns the cloud provider off and on again; the lab's own keeps serving", async () => {
    const local = await startFakeOpenAI({ name: "local" });
    const cloud = await startFakeOpenAI({ name: "cloud" });
    closers.push(() => local.close(), () => cloud.close());
    const gw = await gateway({
      providers: { box: { type: "openai-compatible", base_url: local.v1 }, cloud: { type: "openai", base_url: cloud.v1 } },
      models: { l: { deployments: [{ provider: "box", model: "x" }] }, c: { deployments: [{ provider: "cloud", model: "x" }] } },
    });
    const { client, follower, until } = follow(gw);
    await until((s) => s.connected && s.providers.length === 2, "the snapshot");
    const paused = pausePlan(follower.state);
    expect(paused).toEqual(["cloud"]);
    for (const name of paused) await client.setProviderEnabled(name, false);
    await until((s) => s.providers.find((p) => p.name === "cloud")!.enabled === false, "cloud off");
    expect((await chat(gw, "c")).status).not.toBe(200);
    expect((await chat(gw, "l")).status).toBe(200);
    expect(cloud.hits()).toBe(0);
    expect(trayModel(follower.state, { ...OPTS, cloudPaused: true }).icon).toBe("healthy");

    for (const name of resumePlan(paused, follower.state)) await client.setProviderEnabled(name, true);
    await until((s) => s.providers.every((p) => p.enabled), "cloud on again");
    expect((await chat(gw, "c")).status).toBe(200);
  });

  it("a budget crossed turns the icon amber and makes one notice", async () => {
    const cloud = await startFakeOpenAI({ name: "cloud" });
    closers.push(() => cloud.close());
    const gw = await gateway({
      providers: { cloud: { type: "openai", base_url: cloud.v1 } },
      models: { c: { deployments: [{ provider: "cloud", model: "x", price: { input_per_1m: 1000, output_per_1m: 1000 } }] } },
      budgets: { providers: { cloud: { daily_usd: 0.02 } } },
    });
    const { follower, notices, until } = follow(gw);
    await until((s) => s.connected && s.budgets.length === 1, "the snapshot");
    expect(trayModel(follower.state, OPTS).icon).toBe("healthy");
    for (let i = 0; i < 20 && !follower.state.budgets[0]!.exceeded; i++) await chat(gw, "c");
    await until((s) => s.budgets[0]!.exceeded, "the budget event");
    const m = trayModel(follower.state, OPTS);
    expect(m.icon).toBe("degraded");
    expect(m.tooltip).toBe("labgate: degraded: budget cloud crossed");
    expect(notices.filter((n) => n.key.startsWith("budget:"))).toEqual([
      expect.objectContaining({ key: "budget:provider/cloud/daily_usd", title: "Budget crossed: cloud" }),
    ]);
  });

  it("Unload frees a model on Ollama and the Unload item goes away", async () => {
    const ollama = await startFakeOllama();
    closers.push(() => ollama.close());
    const gw = await gateway({ providers: { ollama: { type: "ollama", base_url: ollama.url } } });
    const { client, follower, until } = follow(gw);
    await until((s) => s.connected && s.loaded.length > 0, "the loaded models");
    const unload = item(trayModel(follower.state, OPTS).menu, "provider:ollama:unload:mistral:latest");
    expect(unload?.action).toEqual({ kind: "unload", provider: "ollama", model: "mistral:latest" });
    await client.unload("ollama", "mistral:latest");
    expect(ollama.bodies("generate").at(-1)).toMatchObject({ model: "mistral:latest", keep_alive: 0 });
    await until((s) => s.loaded.length === 0, "the model event");
    expect(item(trayModel(follower.state, OPTS).menu, "provider:ollama:unload:mistral:latest")).toBeUndefined();
  });

  it("with an admin key: follows with it, and says so when the app does not have it", async () => {
    const gw = await gateway({ providers: {}, server: { admin_key: "env:ADMIN" } }, { ADMIN: "adm-secret" });
    const without = follow(gw);
    await without.until((s) => (s.connectionNote ?? "").includes("admin key"), "the 401");
    expect(trayModel(without.follower.state, OPTS).tooltip).toBe("labgate: down: the admin key is missing or wrong (LABGATE_ADMIN_KEY)");
    const withKey = follow(gw, "adm-secret");
    await withKey.until((s) => s.connected, "the snapshot");
  });

  it("a gateway that goes away turns the icon red", async () => {
    const gw = await startGateway(JSON.stringify({ providers: {} }));
    const { follower, until } = follow(gw);
    await until((s) => s.connected, "the snapshot");
    await gw.close();
    await until((s) => !s.connected, "the disconnect");
    expect(trayModel(follower.state, OPTS)).toMatchObject({ icon: "down", tooltip: expect.stringMatching(/^labgate: down: (gateway not reachable|the gateway closed the event stream)/) });
  });
});
