// "Pause cloud overflow" when the gateway refuses part way: what was turned off is
// remembered at once, so Resume is offered (and turns exactly those on again).
import { describe, expect, it } from "vitest";
import { applyCloudPause, type CloudToggle } from "../../electron/cloud-pause.ts";

function toggles(failOn: string | null) {
  const enabled = new Map<string, boolean>([
    ["openai", true],
    ["anthropic", true],
    ["azure", true],
  ]);
  const saves: string[][] = [];
  const t: CloudToggle = {
    setEnabled: async (name, on) => {
      if (name === failOn) throw new Error(`HTTP 500 from ${name}`);
      enabled.set(name, on);
    },
    save: (paused) => void saves.push(paused),
  };
  return { t, enabled, saves, last: () => saves.at(-1) };
}

describe("pausing and resuming cloud overflow", () => {
  it("the second provider failing: the first stays paused and is saved, so Resume is offered", async () => {
    const { t, enabled, last } = toggles("anthropic");
    await expect(applyCloudPause(true, ["openai", "anthropic", "azure"], [], t)).rejects.toThrow("HTTP 500 from anthropic");
    expect(enabled.get("openai")).toBe(false);
    expect(last()).toEqual(["openai"]); // what the tray reads: paused, so "Resume cloud overflow"
  });

  it("all succeed: each saved as it goes; resume turns them on and empties the list", async () => {
    const { t, enabled, saves } = toggles(null);
    const paused = await applyCloudPause(true, ["openai", "azure"], [], t);
    expect(paused).toEqual(["openai", "azure"]);
    expect(saves).toEqual([["openai"], ["openai", "azure"]]);
    expect(await applyCloudPause(false, ["openai", "azure"], paused, t)).toEqual([]);
    expect([enabled.get("openai"), enabled.get("azure")]).toEqual([true, true]);
  });

  it("a resume failing part way keeps the ones still off (Resume stays)", async () => {
    const { t, last } = toggles("azure");
    await expect(applyCloudPause(false, ["openai", "azure"], ["openai", "azure", "gone"], t)).rejects.toThrow();
    expect(last()).toEqual(["azure"]);
  });
});
