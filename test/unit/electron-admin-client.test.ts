// The main process's event-stream parser and the follower's refetches, without a gateway:
// SSE split at every possible place (a CRLF cut between chunks included) gives the same
// events; overlapping refetches apply the newest answer even when an older one arrives last.
import { describe, expect, it } from "vitest";
import { LabFollower, SseParser, type SseMessage } from "../../electron/admin-client.ts";
import type { LabState } from "../../electron/lab-state.ts";

const STREAM =
  ": hello\r\n\r\n" +
  "id: 1\r\nevent: snapshot\r\ndata: {\"a\":1}\r\n\r\n" +
  "id: 2\r\nevent: process\r\ndata: line one\r\ndata: line two\r\n\r\n" +
  "event: model\ndata: {\"lf\":true}\n\n" +
  "id: 4\revent: gpu\rdata: {\"cr\":true}\r\r";

const EXPECTED: SseMessage[] = [
  { id: "1", event: "snapshot", data: '{"a":1}' },
  { id: "2", event: "process", data: "line one\nline two" },
  { id: undefined, event: "model", data: '{"lf":true}' },
  { id: "4", event: "gpu", data: '{"cr":true}' },
];

function parse(chunks: string[]): SseMessage[] {
  const p = new SseParser();
  return chunks.flatMap((c) => p.push(c));
}

describe("SseParser", () => {
  it("reads CRLF, LF and CR line ends in one chunk", () => {
    expect(parse([STREAM])).toEqual(EXPECTED);
  });

  it("gives the same events wherever the stream is cut (a CRLF split between two chunks included)", () => {
    for (let cut = 1; cut < STREAM.length; cut++) {
      expect(parse([STREAM.slice(0, cut), STREAM.slice(cut)]), `cut at ${cut}`).toEqual(EXPECTED);
    }
    expect(parse([...STREAM])).toEqual(EXPECTED); // one character at a time
    expect(parse(["data: x\r", "\n", "\r", "\n"])).toEqual([{ id: undefined, event: "message", data: "x" }]);
    expect(parse(["data: x\r", "", "\n\r\n"])).toEqual([{ id: undefined, event: "message", data: "x" }]);
  });
});

describe("LabFollower.refetch", () => {
  function controlled() {
    const pending: { path: string; resolve: (body: Record<string, unknown>) => void }[] = [];
    const client = {
      origin: "http://127.0.0.1:1",
      headers: (extra: Record<string, string> = {}) => extra,
      get: (path: string) => new Promise<Record<string, unknown>>((resolve) => pending.push({ path, resolve })),
    };
    const states: LabState[] = [];
    const follower = new LabFollower({ client, onState: (s) => states.push(s) });
    return { follower, pending, states };
  }
  const provider = (enabled: boolean) => ({ data: [{ name: "cloud", type: "openai", enabled, healthy: true }] });

  it("an older answer that arrives last is dropped: the newest one stays applied", async () => {
    const { follower, pending } = controlled();
    const first = follower.refetch("providers");
    const second = follower.refetch("providers");
    expect(pending.map((p) => p.path)).toEqual(["/admin/providers", "/admin/providers"]);
    pending[1]!.resolve(provider(false)); // the newer answer first
    await second;
    expect(follower.state.providers.map((p) => p.enabled)).toEqual([false]);
    pending[0]!.resolve(provider(true)); // then the stale one
    await first;
    expect(follower.state.providers.map((p) => p.enabled)).toEqual([false]);
  });

  it("answers in order are each applied; providers and models are sequenced apart", async () => {
    const { follower, pending } = controlled();
    const p = follower.refetch("providers");
    const m = follower.refetch("models");
    pending[1]!.resolve({ data: [{ provider: "lab", model: "llama", can_unload: true }] });
    pending[0]!.resolve(provider(true));
    await Promise.all([p, m]);
    expect(follower.state.providers.map((x) => x.name)).toEqual(["cloud"]);
    expect(follower.state.loaded).toEqual([{ provider: "lab", model: "llama", canUnload: true }]);
  });

  it("an event applied while a refetch is in flight is kept", async () => {
    const { follower, pending } = controlled();
    const m = follower.refetch("models");
    pending[0]!.resolve({ data: [{ provider: "lab", model: "llama", can_unload: true }] });
    await m;
    const p = follower.refetch("providers");
    follower.update("model", { change: "unloaded", provider: "lab", model: "llama" }); // while the providers are fetched
    pending[1]!.resolve(provider(true));
    await p;
    expect(follower.state.loaded).toEqual([]);
    expect(follower.state.providers.map((x) => x.name)).toEqual(["cloud"]);
  });
});
