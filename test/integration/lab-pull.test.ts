// `labgate pull` as a user runs it: a GGUF from a loopback HTTP server that honours
// Range requests, into the models folder; interrupted half-way (the process is
// killed), then the same command resumes where it stopped; the size and SHA-256
// are checked; a file that is not a GGUF is refused.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { pullModel, PullError } from "../../gateway/lab/pull.ts";

// The downloader saves its progress every 5 MB chunk, so resuming needs a file of a few
// chunks: the tiny model followed by padding (pull checks the GGUF magic, size and hash,
// it does not load the file).
const MODEL = Buffer.concat([readFileSync(new URL("../../../shared/models/stories260K.gguf", import.meta.url)), Buffer.alloc(24 * 1024 * 1024, 7)]);
const SHA = createHash("sha256").update(MODEL).digest("hex");
const BIN = new URL("../../bin/labgate.js", import.meta.url).pathname;

interface FileServer {
  url: string;
  /** The byte offset each GET started at (0 for a whole-file request). */
  starts: number[];
  /** Bytes sent so far in all. */
  sent: number;
  /** Slow down: this many ms between 64 KB pieces. */
  pieceDelayMs: number;
  close(): Promise<void>;
}

async function serveFile(body: Buffer, name: string): Promise<FileServer> {
  const state = { starts: [] as number[], sent: 0, pieceDelayMs: 0 };
  const server: Server = createServer(async (req, res) => {
    if (req.url !== `/${name}`) {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) : body.length - 1;
    const headers = { "content-type": "application/octet-stream", "accept-ranges": "bytes", "content-length": String(end - start + 1), etag: '"v1"' };
    if (req.method === "HEAD") {
      res.writeHead(200, { ...headers, "content-length": String(body.length) }).end();
      return;
    }
    state.starts.push(start);
    if (range) res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${body.length}` });
    else res.writeHead(200, headers);
    for (let at = start; at <= end && !res.destroyed; at += 65536) {
      const piece = body.subarray(at, Math.min(end + 1, at + 65536));
      state.sent += piece.length;
      res.write(piece);
      if (state.pieceDelayMs > 0) await new Promise((r) => setTimeout(r, state.pieceDelayMs));
    }
    res.end();
  });
  const sockets = new Set<import("node:net").Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const fs: FileServer = Object.assign(state, {
    url: `http://127.0.0.1:${port}/${name}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
  return fs;
}

function pull(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; kill(): void; stderr(): string } {
  const child = spawn(process.execPath, [BIN, "pull", ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, HOME: tmpdir() } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  return {
    done: new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr }))),
    kill: () => child.kill("SIGKILL"),
    stderr: () => stderr,
  };
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "labgate-pull-"));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe("labgate pull", () => {
  it("downloads into the models folder, resumes after being killed half-way, and checks size and SHA-256", async () => {
    const srv = await serveFile(MODEL, "stories260K.gguf");
    cleanup.push(() => srv.close());
    const dir = await folder();

    // First run: slow enough to be killed once about half the file has left the server.
    srv.pieceDelayMs = 10;
    const first = pull([srv.url, "--models-dir", dir]);
    // Killed once the pull itself says it has 70% (its progress line each tenth), not once the
    // server has sent that much: on a busy machine megabytes can still sit in socket buffers,
    // and the resume below would have less to keep. (Bounded: the process may take a few
    // seconds to start on a busy machine.)
    const saysSeventy = () => /\b([7-9]\d|100)% /.test(first.stderr());
    for (let i = 0; i < 6000 && !saysSeventy(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(saysSeventy(), first.stderr()).toBe(true);
    first.kill();
    await first.done;
    expect(await readdir(dir)).not.toContain("stories260K.gguf"); // only a partial file so far

    // Second run: resumes with a Range request past the start, and finishes.
    srv.pieceDelayMs = 0;
    const startsBefore = srv.starts.length;
    const second = await pull([srv.url, "--models-dir", dir, "--sha256", SHA]).done;
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`sha256 ${SHA}`);
    // It asked for the missing 5 MB chunks by range, not for the whole file again.
    const resumed = srv.starts.slice(startsBefore);
    expect(resumed.some((s) => s > 0)).toBe(true);
    expect(resumed.filter((s) => s > 0).length).toBeLessThan(Math.ceil(MODEL.length / (5 * 1024 * 1024)) - 1);
    expect((await readFile(join(dir, "stories260K.gguf"))).equals(MODEL)).toBe(true);

    // Third run: the file is whole already: nothing is downloaded again.
    const mtime = (await stat(join(dir, "stories260K.gguf"))).mtimeMs;
    const third = await pull([srv.url, "--models-dir", dir]).done;
    expect(third.code).toBe(0);
    expect(third.stdout).toMatch(/^already there: /);
    expect((await stat(join(dir, "stories260K.gguf"))).mtimeMs).toBe(mtime);
  });

  it("refuses a wrong SHA-256 (keeping the file out of the models) and a file that is not a GGUF; a bad URL is one clear line", async () => {
    const srv = await serveFile(MODEL, "stories260K.gguf");
    cleanup.push(() => srv.close());
    const html = await serveFile(Buffer.from("<!DOCTYPE html><html>not a model</html>"), "fake.gguf");
    cleanup.push(() => html.close());
    const dir = await folder();

    // In process (the command's own messages are these errors' messages).
    const bad = await pullModel({ uri: srv.url, modelsDir: dir, sha256: "0".repeat(64) }).catch((e: unknown) => e as Error);
    expect(bad).toBeInstanceOf(PullError);
    expect((bad as Error).message).toMatch(/SHA-256 .* does not match/);
    expect(await readdir(dir)).toContain("stories260K.gguf.bad");
    expect(await readdir(dir)).not.toContain("stories260K.gguf");

    const notGguf = await pullModel({ uri: html.url, modelsDir: dir }).catch((e: unknown) => e as Error);
    expect(notGguf).toBeInstanceOf(PullError);
    expect((notGguf as Error).message).toMatch(/not a GGUF file/);

    const usage = await pull(["ftp://example/x.gguf", "--models-dir", dir]).done;
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/give an http\(s\):\/\/ URL or hf:/);
  });
});
