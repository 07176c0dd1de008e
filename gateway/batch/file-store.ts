// The batch queue's files on disk: one folder, each file named by the random id labgate
// gave it. Ids are checked against FILE_ID before a path is built, so nothing a client
// sends can address a file outside the folder. Files are written under a temporary
// name and renamed when complete: a crash leaves no half file under a real id.
import { createReadStream, createWriteStream, mkdirSync, readdirSync, type ReadStream } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { randomBytes } from "node:crypto";
import { FILE_ID } from "./ids.ts";

const TEMP = /^\.(upload|result)-[0-9a-f]{16}$/;

export class FileTooLarge extends Error {
  constructor(maxBytes: number) {
    super(`The file is larger than ${Math.round(maxBytes / 1048576)} MB (batch.max_file_mb).`);
    this.name = "FileTooLarge";
  }
}

/** The client stopped sending in the middle of an upload. */
export class UploadIdle extends Error {
  constructor(idleMs: number) {
    super(`The upload sent nothing for ${Math.round(idleMs / 1000)} s (batch.upload_idle_s).`);
    this.name = "UploadIdle";
  }
}

export class FileStorage {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** The path of a file by its id; throws for anything that is not one of labgate's ids. */
  pathOf(id: string): string {
    if (!FILE_ID.test(id)) throw new Error("not a labgate file id");
    return join(this.dir, id);
  }

  private temp(kind: "upload" | "result"): string {
    return join(this.dir, `.${kind}-${randomBytes(8).toString("hex")}`);
  }

  /**
   * Copies an upload to a temporary file, at most maxBytes of it; returns its path and size.
   * `tooLarge` says which limit maxBytes is (the file's own, or the space left for all files).
   * A source that sends nothing for `idleMs` is cut off (UploadIdle), its temporary file removed.
   */
  async receive(source: Readable, maxBytes: number, opts: { idleMs?: number; tooLarge?: () => Error } = {}): Promise<{ temp: string; bytes: number }> {
    const temp = this.temp("upload");
    let bytes = 0;
    const idleMs = opts.idleMs;
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (idleMs === undefined) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(() => source.destroy(new UploadIdle(idleMs)), idleMs);
    };
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        arm();
        bytes += chunk.length;
        if (bytes > maxBytes) done(opts.tooLarge?.() ?? new FileTooLarge(maxBytes));
        else done(null, chunk);
      },
    });
    arm();
    try {
      await pipeline(source, count, createWriteStream(temp, { flags: "wx" }));
    } catch (err) {
      await this.discard(temp);
      throw err;
    } finally {
      if (idle) clearTimeout(idle);
    }
    return { temp, bytes };
  }

  /** A received upload becomes the file `id`. */
  async commit(temp: string, id: string): Promise<void> {
    await rename(temp, this.pathOf(id));
  }

  async discard(temp: string): Promise<void> {
    await unlink(temp).catch(() => {});
  }

  /** Writes lines (each ends with a newline) as the file `id`, on disk before it is named; returns its size. */
  async writeLines(id: string, lines: AsyncIterable<string> | Iterable<string>): Promise<number> {
    const temp = this.temp("result");
    const fh = await open(temp, "wx");
    let bytes = 0;
    try {
      let chunk: string[] = [];
      let size = 0;
      for await (const line of lines) {
        chunk.push(line, "\n");
        size += line.length;
        if (size > 1 << 20) {
          const buf = Buffer.from(chunk.join(""));
          await fh.write(buf);
          bytes += buf.length;
          chunk = [];
          size = 0;
        }
      }
      const buf = Buffer.from(chunk.join(""));
      await fh.write(buf);
      bytes += buf.length;
      await fh.sync();
    } catch (err) {
      await fh.close();
      await this.discard(temp);
      throw err;
    }
    await fh.close();
    await rename(temp, this.pathOf(id));
    return bytes;
  }

  read(id: string): ReadStream {
    return createReadStream(this.pathOf(id));
  }

  async remove(id: string): Promise<void> {
    await unlink(this.pathOf(id)).catch(() => {});
  }

  /** At start: files no row names (a crash between writing a file and recording it) and temporary files go. */
  async removeOrphans(known: Set<string>): Promise<number> {
    let removed = 0;
    for (const name of readdirSync(this.dir)) {
      if (TEMP.test(name) || (FILE_ID.test(name) && !known.has(name))) {
        await unlink(join(this.dir, name)).catch(() => {});
        removed++;
      }
    }
    return removed;
  }
}
