// The disk cannot be filled through the Files API: stored batch files (uploads and
// results) are capped together by batch.max_total_mb (413 in OpenAI's shape naming the
// setting), and an upload whose client stops sending is cut off and its temporary file removed.
import { readdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { useLab } from "../fixtures/lab.ts";

const lab = useLab();

const chatLine = (id: string, pad = "") =>
  JSON.stringify({ custom_id: id, method: "POST", url: "/v1/chat/completions", body: { model: "m", messages: [{ role: "user", content: `q ${id} ${pad}` }] } });

const config = (upV1: string, batch: Record<string, unknown>) => ({
  providers: { local: { type: "openai-compatible", base_url: upV1 } },
  models: { m: { deployments: [{ provider: "local", model: "x" }] } },
  batch,
});

// About 6 KB each: two of them do not fit in 10 KB.
const sixKb = (tag: string) => Buffer.from(Array.from({ length: 6 }, (_, i) => chatLine(`${tag}${i}`, "x".repeat(900))).join("\n") + "\n");

describe("batch file storage limits", () => {
  it("an upload that would take the stored files past batch.max_total_mb gets 413 naming the limit; after a delete it fits", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1, { max_total_mb: 10 / 1024 }));
    const openai = new OpenAI({ baseURL: gw.v1, apiKey: "unused", maxRetries: 0 });
    const first = await openai.files.create({ file: await toFile(sixKb("a"), "a.jsonl"), purpose: "batch" });
    const err = await openai.files.create({ file: await toFile(sixKb("b"), "b.jsonl"), purpose: "batch" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.status).toBe(413);
    expect(e.code).toBe("storage_limit_exceeded");
    expect(e.message).toContain("batch.max_total_mb");
    // Nothing of the refused upload stays on disk.
    expect(readdirSync(join(gw.dataDir, "files"))).toEqual([first.id]);
    await openai.files.delete(first.id);
    expect((await openai.files.create({ file: await toFile(sixKb("b"), "b.jsonl"), purpose: "batch" })).status).toBe("processed");
  });

  it("a client that stops sending mid-upload is cut off after batch.upload_idle_s and its temporary file removed", async () => {
    const up = await lab.fake({ name: "up" });
    const gw = await lab.gateway(config(up.v1, { upload_idle_s: 0.5 }));
    const filesDir = join(gw.dataDir, "files");
    const port = Number(new URL(gw.url).port);
    const boundary = "----labgate-idle";
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\nContent-Type: application/octet-stream\r\n\r\n`;
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    socket.on("data", (d: Buffer) => (answer += d.toString()));
    socket.on("error", () => {});
    socket.write(
      `POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 10000000\r\n\r\n` +
        head +
        chatLine("a") +
        "\n" +
        "x".repeat(70_000),
    );
    // The partial file exists while the upload is open...
    await expect.poll(() => readdirSync(filesDir).filter((n) => n.startsWith(".upload-")).length, { timeout: 20_000, interval: 20 }).toBe(1);
    // ...and the client sends nothing more: the gateway answers 408, closes, and removes it.
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('"code":"upload_timeout"');
    expect(readdirSync(filesDir)).toEqual([]);
  });
});
