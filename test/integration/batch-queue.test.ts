// The local batch queue through OpenAI's Batch API, driven by the official `openai`
// client against a real gateway and a fake OpenAI-compatible upstream: upload, create,
// poll, download; broken JSONL; 4xx items; retries; cancel; expiry; profiles and
// redaction; interactive traffic first.
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import Database from "better-sqlite3";
import { join } from "node:path";
import { startGateway } from "../fixtures/gateway.ts";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

interface Line {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: Record<string, unknown> } | null;
  error: { code: string; message: string } | null;
}

const chatLine = (id: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: `question ${id}` }], ...extra } });

const jsonl = (lines: string[]) => lines.join("\n") + "\n";

function client(v1: string): OpenAI {
  return new OpenAI({ baseURL: v1, apiKey: "unused", maxRetries: 0 });
}

async function upload(openai: OpenAI, text: string, name = "requests.jsonl") {
  return openai.files.create({ file: await toFile(Buffer.from(text), name), purpose: "batch" });
}

async function waitFor(openai: OpenAI, id: string, statuses: string[], timeout = 15_000) {
  let batch = await openai.batches.retrieve(id);
  await expect
    .poll(
      async () => {
        batch = await openai.batches.retrieve(id);
        return batch.status;
      },
      { timeout, interval: 50 },
    )
    .toSatisfy((s: string) => statuses.includes(s));
  return batch;
}

async function lines(openai: OpenAI, fileId: string | null | undefined): Promise<Line[]> {
  if (!fileId) return [];
  const text = await (await openai.files.content(fileId)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
}

const config = (upV1: string, extra: Record<string, unknown> = {}) => ({
  providers: { local: { type: "openai-compatible", base_url: upV1 } },
  models: { m: { deployments: [{ provider: "local", model: "x" }] } },
  router: { retries: 0 },
  batch: { retry_backoff_s: 0.05 },
  ...extra,
});

describe("batch queue: OpenAI's Batch API on localhost", () => {
  it("the openai client uploads a file, creates a batch, polls it to completion and downloads the results", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1));
    const openai = client(gw.v1);
    const ids = Array.from({ length: 6 }, (_, i) => `req-${i + 1}`);
    const file = await upload(openai, jsonl(ids.map((id) => chatLine(id))));
    expect(file).toMatchObject({ object: "file", purpose: "batch", filename: "requests.jsonl", status: "processed" });
    expect(file.id).toMatch(/^file-[0-9a-f]{24}$/);
    expect((await openai.files.retrieve(file.id)).bytes).toBe(file.bytes);

    const created = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { job: "t1" } });
    expect(created).toMatchObject({ object: "batch", status: "validating", endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { job: "t1" } });
    expect(created.request_counts).toEqual({ total: 0, completed: 0, failed: 0 });
    expect(created.expires_at).toBe(created.created_at + 24 * 3600);

    const done = await waitFor(openai, created.id, ["completed", "failed"]);
    expect(done.status).toBe("completed");
    expect(done.request_counts).toEqual({ total: 6, completed: 6, failed: 0 });
    for (const t of ["in_progress_at", "finalizing_at", "completed_at"] as const) expect(done[t]).toBeGreaterThanOrEqual(done.created_at);
    expect(done.failed_at ?? null).toBeNull();
    expect(done.error_file_id ?? null).toBeNull();
    expect(done.usage?.output_tokens).toBe(6 * 5);

    const out = await lines(openai, done.output_file_id);
    expect(out.map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    for (const l of out) {
      expect(l.id).toMatch(/^batch_req_/);
      expect(l.error).toBeNull();
      expect(l.response!.status_code).toBe(200);
      expect(l.response!.body).toMatchObject({ object: "chat.completion", choices: [{ message: { content: "Hello from the fake upstream." } }] });
    }
    // Each result names its request-log row; batch rows carry a batch: tenant.
    gw.gateway.requestLog.flush();
    const db = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
    const rows = db.prepare("SELECT id, tenant, status FROM request_log").all() as { id: string; tenant: string; status: number }[];
    db.close();
    expect(rows.map((r) => r.id).sort()).toEqual(out.map((l) => l.response!.request_id).sort());
    expect(new Set(rows.map((r) => r.tenant))).toEqual(new Set(["batch:anonymous"]));
    // Its items leave the database once its files hold their lines; the counts stay.
    const itemsLeft = () => {
      const d = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
      const n = d.prepare("SELECT count(*) AS n FROM batch_item WHERE batch_id = ?").get(done.id) as { n: number };
      d.close();
      return n.n;
    };
    await expect.poll(itemsLeft, { timeout: 5000 }).toBe(0);
    expect((await openai.batches.retrieve(done.id)).request_counts).toEqual({ total: 6, completed: 6, failed: 0 });

    // Listing pages with limit/after, newest first; the output file is listed with purpose batch_output.
    const second = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const page1 = await openai.batches.list({ limit: 1 });
    expect(page1.data.map((b) => b.id)).toEqual([second.id]);
    expect(page1.has_more).toBe(true);
    const page2 = await openai.batches.list({ limit: 1, after: second.id });
    expect(page2.data.map((b) => b.id)).toEqual([created.id]);
    const outputs = await openai.files.list({ purpose: "batch_output" });
    expect(outputs.data.map((f) => f.id)).toContain(done.output_file_id);
    await waitFor(openai, second.id, ["completed"]);

    // Deleting a file removes it; its id no longer answers.
    expect(await openai.files.delete(file.id)).toEqual({ id: file.id, object: "file", deleted: true });
    await expect(openai.files.retrieve(file.id)).rejects.toMatchObject({ status: 404 });
  });

  it("a broken JSONL is refused at upload with the first bad lines and their numbers; nothing is kept", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway(config(up.v1));
    const openai = client(gw.v1);
    const broken = jsonl([
      chatLine("a"),
      "{not json",
      chatLine("a"),
      JSON.stringify({ custom_id: "c", method: "GET", url: "/v1/chat/completions", body: {} }),
      JSON.stringify({ custom_id: "d", method: "POST", url: "/v1/images/generations", body: {} }),
      JSON.stringify({ custom_id: "e", method: "POST", url: "/v1/chat/completions", body: [1] }),
      JSON.stringify({ method: "POST", url: "/v1/chat/completions", body: {} }),
      chatLine("h"),
    ]);
    const err = await upload(openai, broken).catch((e: unknown) => e as InstanceType<typeof OpenAI.APIError>);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(400);
    expect(e.code).toBe("invalid_batch_file");
    expect(e.param).toBe("file");
    expect(e.message).toContain("6 invalid lines");
    for (const n of [2, 3, 4, 5, 6, 7]) expect(e.message).toContain(`Line ${n}:`);
    expect(e.message).not.toContain("Line 1:");
    expect(e.message).not.toContain("Line 8:");
    expect(e.message).toMatch(/Line 3: custom_id "a" is used by an earlier line/);
    expect(e.message).toMatch(/Line 4: method must be "POST"/);
    expect(e.message).toMatch(/Line 5: url must be one of/);
    expect((await openai.files.list()).data).toEqual([]);

    // Other refusals: wrong purpose, no file, not multipart; an id that is not labgate's never reaches the disk.
    const wrongPurpose = await openai.files.create({ file: await toFile(Buffer.from(chatLine("x")), "x.jsonl"), purpose: "fine-tune" }).catch((e: unknown) => e);
    expect(wrongPurpose).toMatchObject({ status: 400, param: "purpose" });
    const notMultipart = await fetch(`${gw.v1}/files`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(notMultipart.status).toBe(415);
    expect((await notMultipart.json()).error.code).toBe("unsupported_media_type");
    for (const id of ["..%2F..%2Flabgate.db", "file-..", "%2Fetc%2Fpasswd", "file-0123456789abcdef01234567"]) {
      const r = await fetch(`${gw.v1}/files/${id}/content`);
      expect(r.status).toBe(404);
      expect((await r.json()).error.type).toBe("invalid_request_error");
    }
    // A batch on an unknown file, endpoint or profile is refused at once.
    const good = await upload(openai, jsonl([chatLine("ok")]));
    await expect(openai.batches.create({ input_file_id: "file-000000000000000000000000", endpoint: "/v1/chat/completions", completion_window: "24h" })).rejects.toMatchObject({ status: 400, param: "input_file_id" });
    await expect(openai.batches.create({ input_file_id: good.id, endpoint: "/v1/moderations" as "/v1/chat/completions", completion_window: "24h" })).rejects.toMatchObject({ status: 400, param: "endpoint" });
    await expect(openai.batches.create({ input_file_id: good.id, endpoint: "/v1/chat/completions", completion_window: "soon" as "24h" })).rejects.toMatchObject({ status: 400, param: "completion_window" });
    await expect(openai.batches.create({ input_file_id: good.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "nope" } })).rejects.toMatchObject({ status: 400, param: "metadata.profile" });
    // A line for another endpoint than the batch's fails the batch in validation, with its line.
    const embed = await openai.batches.create({ input_file_id: good.id, endpoint: "/v1/embeddings", completion_window: "24h" });
    const failed = await waitFor(openai, embed.id, ["failed"]);
    expect(failed.errors?.data).toEqual([expect.objectContaining({ code: "invalid_url", line: 1, param: "url" })]);
    expect(failed.failed_at).toBeGreaterThan(0);
    expect(failed.in_progress_at ?? null).toBeNull();
  });

  it("the file size limit is enforced while the upload streams in, and the files API also answers without /v1", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway(config(up.v1, { batch: { max_file_mb: 0.01 } }));
    const big = jsonl(Array.from({ length: 200 }, (_, i) => chatLine(`big-${i}`)));
    expect(big.length).toBeGreaterThan(0.01 * 1024 * 1024);
    const err = await upload(client(gw.v1), big).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 413, code: "file_too_large" });
    const small = await upload(client(gw.url), jsonl([chatLine("s")]));
    expect((await client(gw.url).files.retrieve(small.id)).id).toBe(small.id);
  });

  it("an item the upstream refuses with a 4xx is an output line with that status, counted failed; others complete", async () => {
    const up = await lab.fake({ contextLength: 20 });
    const gw = await lab.gateway(config(up.v1));
    const openai = client(gw.v1);
    const long = Array.from({ length: 50 }, () => "word").join(" ");
    const file = await upload(openai, jsonl([chatLine("fine"), chatLine("too-long", { messages: [{ role: "user", content: long }] })]));
    const b = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    const done = await waitFor(openai, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 2, completed: 1, failed: 1 });
    expect(done.error_file_id ?? null).toBeNull();
    const out = await lines(openai, done.output_file_id);
    const byId = Object.fromEntries(out.map((l) => [l.custom_id, l]));
    expect(byId["fine"]!.response!.status_code).toBe(200);
    expect(byId["too-long"]!.response!.status_code).toBe(400);
    expect(byId["too-long"]!.response!.body).toMatchObject({ error: { code: "context_window", message: expect.stringContaining("context") } });
    expect(byId["too-long"]!.error).toBeNull();
  });

  it("retryable failures are retried per item with backoff; an item whose retries run out goes to the error file", async () => {
    const up = await lab.fake();
    const gw = await lab.gateway(config(up.v1, { batch_profiles: { once: { retries: 1, concurrency: 1 } } }));
    const openai = client(gw.v1);
    // Two 500s: the item's one retry is spent, and it goes to the error file.
    up.faultNext({ kind: "status", status: 500 }, 2);
    const b = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl([chatLine("unlucky")]))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { profile: "once" },
    });
    const done = await waitFor(openai, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 1, completed: 0, failed: 1 });
    expect(done.output_file_id ?? null).toBeNull();
    const errors = await lines(openai, done.error_file_id);
    expect(errors).toEqual([expect.objectContaining({ custom_id: "unlucky", response: null, error: expect.objectContaining({ code: "server_error" }) })]);
    expect(up.hits("/v1/chat/completions")).toBe(2);

    // With retries left (the default is 2), 429s are retried and every item completes.
    up.faultNext({ kind: "status", status: 429 }, 2);
    const again = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl([chatLine("r1"), chatLine("r2"), chatLine("r3")]))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    const ok = await waitFor(openai, again.id, ["completed"]);
    expect(ok.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    expect((await lines(openai, ok.output_file_id)).map((l) => l.custom_id)).toEqual(["r1", "r2", "r3"]);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/labgate_batch_items_total\{status="retried"\} [2-9]/);
    expect(metrics).toMatch(/labgate_batches\{status="completed"\} 2/);
    expect(metrics).toMatch(/^batch_completed_success_total 2$/m);
  });

  it("cancel mid-run: finished items stay in the output file, the rest are in the error file as cancelled, each exactly once", async () => {
    const up = await lab.fake({ firstByteDelayMs: 150 });
    const gw = await lab.gateway(config(up.v1, { batch_profiles: { slow: { concurrency: 2 } } }));
    const openai = client(gw.v1);
    const events: { type: string; data: unknown }[] = [];
    gw.gateway.events.subscribe((e) => events.push(e));
    // 60 items of 150 ms two at a time take 4.5 s: far longer than reaching 3 and cancelling.
    const ids = Array.from({ length: 60 }, (_, i) => `c-${i}`);
    const file = await upload(openai, jsonl(ids.map((id) => chatLine(id))));
    const b = await openai.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { profile: "slow" } });
    await expect.poll(async () => (await openai.batches.retrieve(b.id)).request_counts?.completed ?? 0, { timeout: 10_000, interval: 50 }).toBeGreaterThanOrEqual(3);
    const cancelling = await openai.batches.cancel(b.id);
    expect(["cancelling", "cancelled"]).toContain(cancelling.status);
    expect(cancelling.cancelling_at).toBeGreaterThan(0);
    const done = await waitFor(openai, b.id, ["cancelled"]);
    expect(done.cancelled_at).toBeGreaterThanOrEqual(done.cancelling_at!);
    const out = await lines(openai, done.output_file_id);
    const errs = await lines(openai, done.error_file_id);
    expect([...out, ...errs].map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(out.length).toBeGreaterThanOrEqual(3);
    expect(errs.length).toBeGreaterThan(0);
    for (const l of errs) expect(l.error!.code).toBe("batch_cancelled");
    expect(done.request_counts).toEqual({ total: 60, completed: out.length, failed: errs.length });
    // The dashboard can follow: one event per status change.
    const statuses = events.filter((e) => e.type === "batch" && (e.data as { id: string }).id === b.id).map((e) => (e.data as { status: string }).status);
    expect(statuses).toEqual(["validating", "in_progress", "cancelling", "cancelled"]);
    // Cancelling again answers the cancelled batch; a completed one cannot be cancelled.
    expect((await openai.batches.cancel(b.id)).status).toBe("cancelled");
    const quick = await openai.batches.create({ input_file_id: (await upload(openai, jsonl([chatLine("q")]))).id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    await waitFor(openai, quick.id, ["completed"]);
    await expect(openai.batches.cancel(quick.id)).rejects.toMatchObject({ status: 409 });
  });

  it("a batch past its window is expired with its finished part kept", async () => {
    // The pace is the test's: three answers at once, then the upstream holds every request
    // until the window has passed, so the outcome does not depend on the machine's speed.
    let release!: () => void;
    const windowPassed = new Promise<void>((r) => (release = r));
    let answered = 0;
    const up = await lab.fake({ beforeAnswer: () => (answered++ < 3 ? undefined : windowPassed) });
    const gw = await lab.gateway(config(up.v1, { batch_profiles: { hurry: { completion_window: "3s", concurrency: 1 } } }));
    const openai = client(gw.v1);
    const ids = Array.from({ length: 20 }, (_, i) => `e-${i}`);
    const b = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl(ids.map((id) => chatLine(id))))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { profile: "hurry" },
    });
    expect(b.completion_window).toBe("3s");
    expect(b.expires_at).toBe(b.created_at + 3);
    let done = b;
    try {
      done = await waitFor(openai, b.id, ["expired", "completed", "failed"], 30_000);
    } finally {
      release();
    }
    expect(done.status).toBe("expired");
    expect(done.expired_at).toBeGreaterThanOrEqual(done.expires_at!);
    const out = await lines(openai, done.output_file_id);
    const errs = await lines(openai, done.error_file_id);
    // Items run in input order, one at a time: the three answered ones, and no other.
    expect(out.map((l) => l.custom_id)).toEqual(["e-0", "e-1", "e-2"]);
    for (const l of out) expect(l.response!.status_code).toBe(200);
    for (const l of errs) expect(l.error).toMatchObject({ code: "batch_expired" });
    expect([...out, ...errs].map((l) => l.custom_id).sort()).toEqual([...ids].sort());
    expect(done.request_counts).toEqual({ total: 20, completed: 3, failed: 17 });
  });

  it("a profile fills in model and max_tokens, sets the window and redacts personal data from the output file", async () => {
    const up = await lab.fake({ reply: ["Write", " to", " jane.doe@example.com", " or", " call", " +49 151 2345678;", " card", " 4111 1111 1111 1111,", " IBAN", " DE89 3704 0044 0532 0130 00,", " host", " 10.1.2.3."] });
    const gw = await lab.gateway(
      config(up.v1, {
        batch_profiles: {
          "invoice-processing": { model: "m", max_tokens: 64, completion_window: "2h", redact_pii: true, priority: 5 },
        },
      }),
    );
    const openai = client(gw.v1);
    const noModel = (id: string) => JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { messages: [{ role: "user", content: "extract" }] } });
    const own = JSON.stringify({ custom_id: "own", method: "POST", url: "/v1/chat/completions", body: { model: "m", max_tokens: 7, messages: [{ role: "user", content: "extract" }] } });
    const b = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl([noModel("p1"), own]))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { profile: "invoice-processing" },
    });
    expect(b.completion_window).toBe("2h");
    expect(b.expires_at).toBe(b.created_at + 7200);
    const done = await waitFor(openai, b.id, ["completed"]);
    expect(done.request_counts).toEqual({ total: 2, completed: 2, failed: 0 });
    const sent = up.requests.filter((r) => r.path === "/v1/chat/completions").map((r) => r.body!);
    expect(sent.map((s) => s.max_tokens).sort()).toEqual([64, 7]);
    expect(sent.every((s) => s.model === "x")).toBe(true);
    const text = await (await openai.files.content(done.output_file_id!)).text();
    for (const pii of ["jane.doe@example.com", "2345678", "4111", "DE89", "10.1.2.3"]) expect(text).not.toContain(pii);
    const content = (JSON.parse(text.split("\n")[0]!) as Line).response!.body as { choices: { message: { content: string } }[] };
    expect(content.choices[0]!.message.content).toBe("Write to [EMAIL] or call [PHONE]; card [CARD], IBAN [IBAN], host [IP].");
  });

  it("interactive first: batch items start only while no interactive request is in flight on their provider, and never above its batch cap", async () => {
    const up = await lab.fake({ firstByteDelayMs: 60 });
    const gw = await lab.gateway(config(up.v1, { batch: { provider_concurrency: 2, retry_backoff_s: 0.05 }, batch_profiles: { wide: { concurrency: 10 } } }));
    const openai = client(gw.v1);
    // An interactive request that hangs upstream until the test lets it go.
    up.faultNext({ kind: "hang" }, 1);
    const ac = new AbortController();
    const interactive = fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "now" }] }),
      signal: ac.signal,
    }).catch(() => undefined);
    await expect.poll(() => up.hits(), { timeout: 5000 }).toBe(1);
    const ids = Array.from({ length: 12 }, (_, i) => `i-${i}`);
    const b = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl(ids.map((id) => chatLine(id))))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { profile: "wide" },
    });
    // The worker asks the admission gate a few times and is told to wait each time (not a fixed sleep: its own refusals).
    const gate = gw.gateway.batches.gate;
    const tryStart = gate.tryStart.bind(gate);
    let refused = 0;
    gate.tryStart = (...args: Parameters<typeof gate.tryStart>) => {
      const r = tryStart(...args);
      if ("wait" in r && r.wait === "interactive") refused++;
      return r;
    };
    await waitFor(openai, b.id, ["in_progress"]);
    await expect.poll(() => refused, { timeout: 15_000, interval: 20 }).toBeGreaterThanOrEqual(3);
    expect(up.hits()).toBe(1);
    expect((await openai.batches.retrieve(b.id)).request_counts?.completed).toBe(0);
    // The interactive request ends: the batch runs, at most 2 items at a time on the provider.
    ac.abort();
    await interactive;
    await waitFor(openai, b.id, ["completed"]);
    // What the upstream saw: each batch request arrived after the interactive one (index 0) was
    // sent, and with at most one other batch request in flight (the cap, 2), whatever the timing.
    const seen = up.requests.slice(1).filter((r) => r.method === "POST");
    expect(seen).toHaveLength(12);
    const overlap = Math.max(...seen.map((r) => r.concurrentWith!.filter((i) => i !== 0).length + 1));
    expect(overlap).toBeLessThanOrEqual(2);
  });

  it("with a master key, the files and batches routes need it, like the rest of /v1; batch rows carry the key's tenant", async () => {
    const up = await lab.fake();
    const gw = await startGateway(JSON.stringify({ ...config(up.v1), server: { master_key: "env:BATCH_TEST_KEY" } }), { env: { BATCH_TEST_KEY: "sk-batch-test" } });
    try {
      for (const [method, path] of [["GET", "/files"], ["POST", "/files"], ["GET", "/batches"], ["POST", "/batches"], ["GET", "/files/file-000000000000000000000000/content"], ["POST", "/batches/batch_000000000000000000000000/cancel"]]) {
        const r = await fetch(`${gw.v1}${path}`, { method });
        expect(r.status, `${method} ${path}`).toBe(401);
        expect((await r.json()).error.code).toBe("missing_api_key");
      }
      await expect(client(gw.v1).files.list()).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
      const openai = new OpenAI({ baseURL: gw.v1, apiKey: "sk-batch-test", maxRetries: 0 });
      const b = await openai.batches.create({ input_file_id: (await upload(openai, jsonl([chatLine("k")]))).id, endpoint: "/v1/chat/completions", completion_window: "24h" });
      await waitFor(openai, b.id, ["completed"]);
      gw.gateway.requestLog.flush();
      const db = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
      expect(db.prepare("SELECT tenant FROM request_log").all()).toEqual([{ tenant: "batch:master" }]);
      db.close();
    } finally {
      await gw.close();
    }
  });

  it("with batch.preempt, an interactive request that arrives while a batch item runs cancels it; the item runs again later, its attempt given back", async () => {
    const up = await lab.fake({ firstByteDelayMs: 600 });
    const gw = await lab.gateway(config(up.v1, { batch: { provider_concurrency: 1, preempt: true, retry_backoff_s: 0.05 }, batch_profiles: { strict: { retries: 0, concurrency: 1 } } }));
    const openai = client(gw.v1);
    const b = await openai.batches.create({
      input_file_id: (await upload(openai, jsonl([chatLine("p1"), chatLine("p2")]))).id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { profile: "strict" },
    });
    await expect.poll(() => up.hits(), { timeout: 10_000 }).toBe(1);
    const r = await fetch(`${gw.v1}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "interactive" }] }),
    });
    expect(r.status).toBe(200);
    await r.json();
    const done = await waitFor(openai, b.id, ["completed"]);
    // Retries 0, yet both completed: the preempted run was not an attempt.
    expect(done.request_counts).toEqual({ total: 2, completed: 2, failed: 0 });
    expect((await lines(openai, done.output_file_id)).map((l) => l.custom_id)).toEqual(["p1", "p2"]);
    // The batch's first item ran twice, the interactive request once, the second item once.
    expect(up.hits()).toBe(4);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/labgate_batch_items_total\{status="preempted"\} 1\b/);
    gw.gateway.requestLog.flush();
    const db = new Database(join(gw.dataDir, "labgate.db"), { readonly: true });
    const rows = db.prepare("SELECT tenant, status FROM request_log ORDER BY ts").all();
    db.close();
    expect(rows).toEqual(expect.arrayContaining([{ tenant: "batch:anonymous", status: 499 }, { tenant: "anonymous", status: 200 }]));
  });
});

