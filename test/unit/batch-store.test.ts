// The batch queue's store: each item ends once, whatever races it (a late answer after a
// cancel, a second finish), and a restart finds running items pending again.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BatchStore, type BatchRow } from "../../gateway/store/batches.ts";
import { openDatabase, type Db } from "../../gateway/store/db.ts";

const dirs: string[] = [];
const dbs: Db[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(): { store: BatchStore; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "labgate-batch-store-"));
  dirs.push(dir);
  const file = join(dir, "labgate.db");
  const db = openDatabase(file);
  dbs.push(db);
  return { store: new BatchStore(db), file };
}

function batch(id: string): BatchRow {
  return {
    id, tenant: "t", endpoint: "/v1/chat/completions", input_file_id: "file-000000000000000000000000", completion_window: "24h", window_s: 86400,
    profile: null, priority: 0, status: "validating", metadata: null, options: "{}", ending: null, errors: null, output_file_id: null, error_file_id: null,
    created_at: 1, in_progress_at: null, expires_at: 86401, finalizing_at: null, completed_at: null, failed_at: null, expired_at: null,
    cancelling_at: null, cancelled_at: null, prompt_tokens: 0, completion_tokens: 0, request_total: null, request_completed: null, request_failed: null, purged: 0,
  };
}

const end = (result: string) => ({ state: "done" as const, file: "output" as const, result, requestId: "r", promptTokens: 2, completionTokens: 3 });

describe("batch store", () => {
  it("a validation cut short leaves no items: chunks go in only while validating, and those of batches that never started are dropped (at restart)", () => {
    const { store: s } = store();
    s.insertBatch(batch("v1"));
    s.insertBatch(batch("v2"));
    s.insertBatch(batch("run"));
    const items = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ line: from + i, custom_id: `c${from + i}`, body: "{}" }));
    expect(s.insertItems("v1", items(1, 3))).toBe(true);
    expect(s.insertItems("v2", items(1, 2))).toBe(true);
    expect(s.start("run", items(1, 4), 2)).toBe(true);
    // Cancelled while validating: no more chunks.
    expect(s.cancel("v2", 3)).toBe(true);
    expect(s.insertItems("v2", items(3, 2))).toBe(false);
    expect(s.counts("v2").total).toBe(2);
    expect(s.dropUnstartedItems()).toBe(5);
    expect(s.counts("v1").total).toBe(0);
    expect(s.counts("v2").total).toBe(0);
    expect(s.counts("run").total).toBe(4);
    // A failed validation keeps none of the chunks it inserted.
    expect(s.insertItems("v1", items(1, 3))).toBe(true);
    expect(s.failValidation("v1", { object: "list", data: [] }, 4)).toBe(true);
    expect(s.counts("v1").total).toBe(0);
  });

  it("an item ends once: a late answer after a cancel is dropped, and the cancel's line stays", () => {
    const { store: s } = store();
    s.insertBatch(batch("b1"));
    expect(s.start("b1", [1, 2, 3].map((line) => ({ line, custom_id: `c${line}`, body: "{}" })), 2)).toBe(true);
    expect(s.start("b1", [], 2)).toBe(false);
    expect(s.markRunning("b1", 1)).toBe(true);
    expect(s.markRunning("b1", 1)).toBe(false);
    expect(s.markRunning("b1", 2)).toBe(true);
    expect(s.endItem("b1", 1, end("one"))).toBe(true);
    expect(s.endItem("b1", 1, end("again"))).toBe(false);
    expect(s.cancel("b1", 3)).toBe(true);
    expect(s.closeItems("b1", "cancelled", 3, (it) => `cancelled ${it.custom_id}`)).toBe(2);
    // Item 2 was running when the batch was cancelled: its answer comes too late.
    expect(s.endItem("b1", 2, end("late"))).toBe(false);
    expect(s.counts("b1")).toEqual({ total: 3, completed: 1, failed: 2 });
    expect(s.resultPage("b1", "output", 0, 10).map((r) => r.result)).toEqual(["one"]);
    expect(s.resultPage("b1", "error", 0, 10).map((r) => r.result)).toEqual(["cancelled c2", "cancelled c3"]);
    expect(s.batch("b1")).toMatchObject({ status: "cancelling", ending: "cancelled", prompt_tokens: 2, completion_tokens: 3 });
    const out = { id: "file-000000000000000000000001", purpose: "batch_output", filename: "o", bytes: 4, lines: 1, created_at: 4, tenant: "t" };
    expect(s.finish("b1", { output: out }, 4)).toBe("cancelled");
    expect(s.finish("b1", {}, 5)).toBeUndefined();
    expect(s.batch("b1")).toMatchObject({ status: "cancelled", cancelled_at: 4, output_file_id: out.id, error_file_id: null });
    expect(s.cancel("b1", 6)).toBe(false);
    expect(s.endedBetween(0, 10)).toEqual({ ended: 1, completed: 0 });
    expect(s.endedBetween(5, 10)).toEqual({ ended: 0, completed: 0 });
    // An ended batch's items are purged in steps; its counts stay.
    expect(s.purgeEnded(2)).toBe(2);
    expect(s.purgeEnded(2)).toBe(1);
    expect(s.purgeEnded(2)).toBe(0);
    expect(s.batch("b1")!.purged).toBe(1);
    expect(s.resultPage("b1", "error", 0, 10)).toEqual([]);
    expect(s.counts("b1")).toEqual({ total: 3, completed: 1, failed: 2 });
  });

  it("after a crash, items that were running are pending again (their attempt given back) in a new connection", () => {
    const { store: s, file } = store();
    s.insertBatch(batch("b2"));
    s.start("b2", [{ line: 1, custom_id: "a", body: "{}" }, { line: 2, custom_id: "b", body: "{}" }], 2);
    s.markRunning("b2", 1);
    s.markRunning("b2", 2);
    s.endItem("b2", 2, end("b"));
    const again = openDatabase(file);
    dbs.push(again);
    const s2 = new BatchStore(again);
    expect(s2.requeueRunning()).toBe(1);
    expect(s2.due("b2", Date.now(), 10)).toEqual([expect.objectContaining({ line: 1, state: "pending", attempts: 0 })]);
    expect(s2.hasUnended("b2")).toBe(true);
  });

  it("claims a chunk in input order in one call, and many answers end in one call: each still-running item once, tokens summed; a crash gives claimed items back", () => {
    const { store: s, file } = store();
    s.insertBatch(batch("b3"));
    s.start("b3", [1, 2, 3, 4, 5].map((line) => ({ line, custom_id: `c${line}`, body: "{}" })), 2);
    const first = s.claim("b3", Date.now(), 2);
    expect(first.map((i) => [i.line, i.state, i.attempts])).toEqual([[1, "running", 1], [2, "running", 1]]);
    expect(s.claim("b3", Date.now(), 2).map((i) => i.line)).toEqual([3, 4]);
    // Item 3 is cancelled meanwhile (ended by someone else): its late answer changes nothing.
    expect(s.endItem("b3", 3, { ...end("other"), state: "failed", file: "error" })).toBe(true);
    const ended = s.endItems([1, 2, 3].map((line) => ({ batchId: "b3", line, end: end(`answer ${line}`) })));
    expect(ended).toEqual([true, true, false]);
    expect(s.resultPage("b3", "output", 0, 10).map((r) => r.result)).toEqual(["answer 1", "answer 2"]);
    expect(s.batch("b3")).toMatchObject({ prompt_tokens: 6, completion_tokens: 9 });
    expect(s.counts("b3")).toEqual({ total: 5, completed: 2, failed: 1 });
    // Item 4 was claimed and never answered: a new start finds it pending, its attempt given back; 5 was never claimed.
    const again = openDatabase(file);
    dbs.push(again);
    const s2 = new BatchStore(again);
    expect(s2.requeueRunning()).toBe(1);
    expect(s2.claim("b3", Date.now(), 10).map((i) => [i.line, i.attempts])).toEqual([[4, 1], [5, 1]]);
  });
});
