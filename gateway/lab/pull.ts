// `labgate pull URL|hf:OWNER/REPO/FILE.gguf`: a GGUF into the models folder, with
// node-llama-cpp's downloader (ipull underneath: parallel ranges, and a partial
// file that the next run resumes instead of starting over), then checked: the size
// the server announced, the GGUF magic, and the SHA-256 when one is given.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, stat } from "node:fs/promises";
import { basename } from "node:path";

export interface PullProgress {
  totalBytes: number;
  downloadedBytes: number;
  bytesPerSecond: number;
}

export interface PullOptions {
  /** http(s) URL, or hf:OWNER/REPO/FILE.gguf (also hf:OWNER/REPO:QUANT, as node-llama-cpp reads it). */
  uri: string;
  modelsDir: string;
  /** Expected SHA-256 (hex) of the finished file. */
  sha256?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
}

export interface PullResult {
  path: string;
  bytes: number;
  sha256: string;
  /** The file was already complete: nothing was downloaded. */
  alreadyThere: boolean;
}

export class PullError extends Error {
  override name = "PullError";
}

const GGUF_MAGIC = Buffer.from("GGUF");

export async function pullModel(opts: PullOptions): Promise<PullResult> {
  if (!/^(https?:\/\/|hf:)/.test(opts.uri)) throw new PullError(`cannot pull ${opts.uri}: give an http(s):// URL or hf:OWNER/REPO/FILE.gguf`);
  // Loaded only by this command: serving never pays for the downloader.
  const { createModelDownloader } = await import("node-llama-cpp");
  let downloader;
  try {
    downloader = await createModelDownloader({
      modelUri: opts.uri,
      dirPath: opts.modelsDir,
      headers: opts.headers,
      skipExisting: true,
      // Keep the partial file when interrupted: the next run resumes it.
      deleteTempFileOnCancel: false,
      onProgress: (s) => opts.onProgress?.({ totalBytes: s.totalSize, downloadedBytes: s.downloadedSize, bytesPerSecond: s.averageSpeed }),
    });
  } catch (err) {
    throw new PullError(`cannot pull ${opts.uri}: ${(err as Error).message}`);
  }
  const target = downloader.entrypointFilePath;
  const before = await stat(target).catch(() => undefined);
  const expected = downloader.totalSize;
  const alreadyThere = before !== undefined && before.size === expected;
  let path: string;
  try {
    path = await downloader.download({ signal: opts.signal });
  } catch (err) {
    if (opts.signal?.aborted) throw new PullError(`download of ${basename(target)} interrupted; run the same command again to resume`);
    throw new PullError(`download of ${basename(target)} failed: ${(err as Error).message}`);
  }
  const size = (await stat(path)).size;
  if (expected > 0 && size !== expected) {
    throw new PullError(`${basename(path)} is ${size} bytes but the server announced ${expected}: run the command again to resume, or delete the file`);
  }
  await checkMagic(path);
  const sha256 = await sha256Of(path);
  if (opts.sha256 && sha256 !== opts.sha256.toLowerCase()) {
    // Keep the bad file out of the models folder's *.gguf so it is never served.
    await rename(path, `${path}.bad`);
    throw new PullError(`${basename(path)}: SHA-256 ${sha256} does not match the expected ${opts.sha256.toLowerCase()}; kept as ${basename(path)}.bad`);
  }
  return { path, bytes: size, sha256, alreadyThere };
}

async function checkMagic(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(4);
    await fh.read(head, 0, 4, 0);
    if (!head.equals(GGUF_MAGIC)) throw new PullError(`${basename(path)} is not a GGUF file (it starts with ${JSON.stringify(head.toString("latin1"))})`);
  } finally {
    await fh.close();
  }
}

function sha256Of(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(path)
      .on("data", (c) => h.update(c))
      .on("error", reject)
      .on("end", () => resolve(h.digest("hex")));
  });
}

/** A one-line progress bar for a terminal (or a plain line when not a terminal). */
export function progressLine(p: PullProgress, width = 30): string {
  const ratio = p.totalBytes > 0 ? Math.min(1, p.downloadedBytes / p.totalBytes) : 0;
  const filled = Math.round(ratio * width);
  const mb = (n: number): string => (n / 1_048_576).toFixed(1);
  return `[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${mb(p.downloadedBytes)}/${mb(p.totalBytes)} MB ${mb(p.bytesPerSecond)} MB/s`;
}

