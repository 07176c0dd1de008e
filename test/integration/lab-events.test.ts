// The live event stream as the dashboard and the tray see it: a snapshot first,
// then a provider going down (breaker opening, panic) and coming back, toggles,
// a summary of the traffic each second; a reconnect with Last-Event-ID gets what
// it missed and no second snapshot.
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";
import { openSse } from "../fixtures/sse-client.ts";

const lab = useLab();

describe("GET /admin/events", () => {
  it("follows a provider going down and coming back, and a client that reconnects loses nothing", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway({
      providers: { a: { type: "openai-compatible", base_url: up.v1 } },
      models: { m: { deployments: [{ provider: "a", model: "x" }] } },
      router: { retries: 0, circuit_breaker: { consecutive_failures: 2, panic_threshold: 0 } },
    });
    const chat = () =>
      fetch(`${gw.v1}/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }) }).then((r) => r.status);

    const client = await openSse(`${gw.url}/admin/events`);
    const snapshot = await client.waitFor((e) => e.event === "snapshot");
    expect(snapshot.data).toMatchObject({ data: [{ name: "a", enabled: true }], groups: [{ name: "m", panic: false }] });

    // Traffic shows in the next summary.
    expect(await chat()).toBe(200);
    const summary = await client.waitFor((e) => e.event === "summary" && (e.data.requests as number) >= 1);
    expect(summary.data.providers).toMatchObject({ a: { requests: 1, errors: 0 } });

    // The upstream goes down: two failures open the breaker.
    up.fault = { kind: "status", status: 500 };
    expect(await chat()).toBe(502);
    expect(await chat()).toBe(502);
    const opened = await client.waitFor((e) => e.event === "breaker" && e.data.to === "open");
    expect(opened.data).toMatchObject({ provider: "a", deployment: "m#0", from: "closed" });
    const lastSeen = client.events.at(-1)!.id!;
    client.close();

    // While nobody listens: the operator disables the provider, then resets the breaker and enables it again.
    await fetch(`${gw.url}/admin/providers/a/disable`, { method: "POST" });
    up.fault = { kind: "none" };
    await fetch(`${gw.url}/admin/circuit-breaker/reset`, { method: "POST" });
    await fetch(`${gw.url}/admin/providers/a/enable`, { method: "POST" });

    // Back with Last-Event-ID: exactly the changes it missed, in order, no snapshot.
    const again = await openSse(`${gw.url}/admin/events`, { "last-event-id": lastSeen });
    await again.waitFor((e) => e.event === "provider" && e.data.enabled === true);
    const changes = again.events.filter((e) => e.event !== "summary");
    expect(changes.map((e) => [e.event, e.data.change ?? e.data.to])).toEqual([
      ["provider", "enabled"],
      ["breaker", "closed"],
      ["provider", "enabled"],
    ]);
    expect(changes.map((e) => e.data.enabled)).toEqual([false, undefined, true]);
    expect(again.events.some((e) => e.event === "snapshot")).toBe(false);
    expect(await chat()).toBe(200);
    again.close();

    // An id the gateway no longer has (or from another run) gets a fresh snapshot.
    const stale = await openSse(`${gw.url}/admin/events`, { "last-event-id": "12" });
    await stale.waitFor((e) => e.event === "snapshot");
    stale.close();
  });
});

describe("GET /admin/events at shutdown", () => {
  it("a gateway with a client still following its events closes, ending the stream", async () => {
    const gw = await lab.gateway({});
    const client = await openSse(`${gw.url}/admin/events`);
    await client.waitFor((e) => e.event === "snapshot");
    await gw.gateway.close(); // would wait for the stream forever if the gateway did not end it
    expect(gw.gateway.events.clients).toBe(0);
    client.close();
  });
});
