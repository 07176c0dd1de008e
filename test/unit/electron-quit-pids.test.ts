// Quit signals a server the gateway left behind only while its pid is still that server:
// a real child whose recorded start time is wrong (the pid was reused) is left running and
// the report says why; with the right one it is stopped. And a bounded step whose call fails
// after the step gave up leaves no unhandled rejection.
import { spawn, type ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { boundedStep, leftoverServers, leftoverStep, pidAlive, runQuitSequence } from "../../electron/quit.ts";
import { processStartTicks } from "../../gateway/lab/orphans.ts";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0).reverse()) c();
});

async function child(): Promise<ChildProcess> {
  const c = spawn(process.execPath, ["-e", `console.log("ready"); setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => void (c.exitCode === null && c.signalCode === null && c.kill("SIGKILL")));
  await new Promise<void>((resolve) => c.stdout!.once("data", () => resolve()));
  return c;
}

const timeouts = { graceMs: 300, killMs: 3000 };

describe.runIf(process.platform === "linux")("leftover servers are signalled only while their pid is theirs", () => {
  it("a recorded start time that does not match: not signalled, and the report says so", async () => {
    const c = await child();
    const real = processStartTicks(c.pid!)!;
    const wrong = String(Number(real) + 12345);
    const [line] = await runQuitSequence([leftoverStep({ name: "lab-llama", pid: c.pid!, startTicks: wrong }, timeouts)]);
    expect(line!.outcome).toMatch(/^left alone: pid \d+ is another process now/);
    expect(pidAlive(c.pid!)).toBe(true);
    expect(c.signalCode).toBeNull();
  });

  it("the right start time: stopped", async () => {
    const c = await child();
    const exited = new Promise((r) => c.once("exit", (_code, signal) => r(signal)));
    const [line] = await runQuitSequence([leftoverStep({ name: "lab-llama", pid: c.pid!, startTicks: processStartTicks(c.pid!)! }, timeouts)]);
    expect(line!.outcome).toBe("exited");
    expect(await exited).toBe("SIGTERM");
  });

  it("no start time to compare with (as on a system without /proc): left alone, said in the report", async () => {
    const c = await child();
    const [noRecord] = await runQuitSequence([leftoverStep({ name: "a", pid: c.pid! }, timeouts)]);
    expect(noRecord!.outcome).toMatch(/^left alone: no start time recorded \(cannot verify/);
    const [noProc] = await runQuitSequence([leftoverStep({ name: "b", pid: c.pid!, startTicks: "1" }, timeouts, { readStartTicks: () => undefined })]);
    expect(noProc!.outcome).toMatch(/^left alone: this system does not say when pid \d+ started/);
    expect(pidAlive(c.pid!)).toBe(true);
  });

  it("the start time comes from launched.json when the gateway recorded it, else it is read while the gateway still reports the pid", () => {
    const servers = leftoverServers(
      [
        { name: "a", pid: 10 },
        { name: "b", pid: 11 },
        { name: "c", pid: 12 },
      ],
      [{ name: "a", pid: 10, startTicks: "500", command: "x" }, { name: "other", pid: 11, startTicks: "600", command: "y" }],
      (pid) => (pid === 11 ? "700" : undefined),
    );
    expect(servers).toEqual([
      { name: "a", pid: 10, startTicks: "500" },
      { name: "b", pid: 11, startTicks: "700" },
      { name: "c", pid: 12 },
    ]);
  });
});

describe("a bounded step", () => {
  it("a call that fails after the step gave up is handled (no unhandled rejection)", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (r: unknown): void => void unhandled.push(r);
    process.on("unhandledRejection", onUnhandled);
    cleanup.push(() => process.off("unhandledRejection", onUnhandled));
    let fail!: (e: Error) => void;
    const step = boundedStep("stop via gateway", 20, () => new Promise<string>((_r, reject) => (fail = reject)));
    expect(await step.run()).toBe("gave up after 20 ms");
    fail(new Error("connection reset"));
    // Two turns of the event loop: an unhandled rejection is reported after the microtasks drain.
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setImmediate(r));
    expect(unhandled).toEqual([]);
  });

  it("a call that fails in time fails the step", async () => {
    const [line] = await runQuitSequence([boundedStep("x", 5000, async () => Promise.reject(new Error("refused")))]);
    expect(line!.outcome).toBe("error: refused");
  });
});
