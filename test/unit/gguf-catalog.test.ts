// Model discovery from a models folder: names, overrides, header facts, broken files,
// split models, the stat-keyed cache. GGUF files are written by hand here (headers
// only, no weights) plus the real tiny model.
import { copyFile, mkdir, mkdtemp, open, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { GgufCatalog } from "../../native/gguf.ts";

const MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url);
const dirs: string[] = [];
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "labgate-gguf-"));
  dirs.push(dir);
});

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

type Value = string | number;

/** A GGUF v3 file: header, tensor infos, padding to 32, then `dataBytes` of tensor data. */
function gguf(kv: Record<string, Value>, tensors: { name: string; dims: number[]; offset: number }[], dataBytes: number): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    parts.push(b);
  };
  const u64 = (n: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    parts.push(b);
  };
  const str = (s: string) => {
    u64(Buffer.byteLength(s));
    parts.push(Buffer.from(s));
  };
  parts.push(Buffer.from("GGUF"));
  u32(3);
  u64(tensors.length);
  u64(Object.keys(kv).length);
  for (const [k, v] of Object.entries(kv)) {
    str(k);
    if (typeof v === "string") {
      u32(8);
      str(v);
    } else {
      u32(4);
      u32(v);
    }
  }
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(0); // F32
    u64(t.offset);
  }
  const header = Buffer.concat(parts);
  const padded = Math.ceil(header.length / 32) * 32;
  return Buffer.concat([header, Buffer.alloc(padded - header.length), Buffer.alloc(dataBytes)]);
}

const llamaKv = { "general.architecture": "llama", "general.name": "handmade", "llama.context_length": 4096 };
const oneTensor = [{ name: "token_embd.weight", dims: [16, 4], offset: 0 }]; // 64 floats = 256 bytes

describe("GGUF catalog", () => {
  it("names each model after its file and reads context length, architecture and size from the header", async () => {
    await copyFile(MODEL, join(dir, "stories260K.gguf"));
    await writeFile(join(dir, "hand.gguf"), gguf(llamaKv, oneTensor, 256));
    await writeFile(join(dir, "notes.txt"), "not a model");
    await mkdir(join(dir, "folder.gguf"));
    const scan = await new GgufCatalog({ dir }).scan();
    expect(scan.exists).toBe(true);
    expect(scan.models.map((m) => m.id)).toEqual(["hand", "stories260K"]);
    const [hand, stories] = scan.models;
    expect(stories).toMatchObject({ file: "stories260K.gguf", contextLength: 2048, architecture: "llama", sizeBytes: 1185376, chatTemplate: false, parts: 1 });
    expect(stories.error).toBeUndefined();
    expect(hand).toMatchObject({ contextLength: 4096, architecture: "llama", name: "handmade" });
    expect(hand.error).toBeUndefined();
  });

  it("applies model_names overrides by file name or by stem", async () => {
    await writeFile(join(dir, "a.gguf"), gguf(llamaKv, oneTensor, 256));
    await writeFile(join(dir, "b.gguf"), gguf(llamaKv, oneTensor, 256));
    await writeFile(join(dir, "c.gguf"), gguf(llamaKv, oneTensor, 256));
    const scan = await new GgufCatalog({ dir, names: { "a.gguf": "alpha", b: "beta" } }).scan();
    expect(scan.models.map((m) => [m.file, m.id])).toEqual([
      ["a.gguf", "alpha"],
      ["b.gguf", "beta"],
      ["c.gguf", "c"],
    ]);
    // The first file keeps a name two files claim.
    const clash = await new GgufCatalog({ dir, names: { "a.gguf": "same", "b.gguf": "same" } }).scan();
    expect(clash.models.map((m) => [m.file, m.id])).toEqual([
      ["a.gguf", "same"],
      ["c.gguf", "c"],
    ]);
  });

  it("marks truncated and unreadable files with a clear error instead of failing the scan", async () => {
    await writeFile(join(dir, "nodata.gguf"), gguf(llamaKv, oneTensor, 100));
    await writeFile(join(dir, "junk.gguf"), "this is not a gguf file");
    const full = gguf(llamaKv, oneTensor, 256);
    await writeFile(join(dir, "cut.gguf"), full.subarray(0, 40));
    const models = (await new GgufCatalog({ dir }).scan()).models;
    const err = Object.fromEntries(models.map((m) => [m.id, m.error]));
    expect(err.nodata).toMatch(/file is truncated: tensor data ends at byte \d+ but the file has \d+ bytes/);
    expect(err.junk).toMatch(/unreadable GGUF header: .*magic/i);
    expect(err.cut).toMatch(/truncated|unreadable|corrupt/);
  });

  it("skips files that are not models (vocabulary-only, vision projectors)", async () => {
    await writeFile(join(dir, "vocab.gguf"), gguf(llamaKv, [], 0));
    await writeFile(join(dir, "mmproj.gguf"), gguf({ "general.architecture": "clip" }, oneTensor, 256));
    await writeFile(join(dir, "real.gguf"), gguf(llamaKv, oneTensor, 256));
    expect((await new GgufCatalog({ dir }).scan()).models.map((m) => m.id)).toEqual(["real"]);
  });

  it("lists a split model once, under its first part", async () => {
    await writeFile(join(dir, "big-00001-of-00002.gguf"), gguf(llamaKv, oneTensor, 256));
    await writeFile(join(dir, "big-00002-of-00002.gguf"), gguf(llamaKv, oneTensor, 256));
    await writeFile(join(dir, "orphan-00002-of-00002.gguf"), gguf(llamaKv, oneTensor, 256));
    const models = (await new GgufCatalog({ dir }).scan()).models;
    expect(models.map((m) => [m.id, m.file, m.parts])).toEqual([["big", "big-00001-of-00002.gguf", 2]]);
    const sizes = await Promise.all(["big-00001-of-00002.gguf", "big-00002-of-00002.gguf"].map((f) => stat(join(dir, f))));
    expect(models[0].sizeBytes).toBe(sizes[0].size + sizes[1].size);
  });

  it("a folder that does not exist yet is no models, not an error", async () => {
    const scan = await new GgufCatalog({ dir: join(dir, "later") }).scan();
    expect(scan).toMatchObject({ exists: false, models: [] });
  });

  it("sees files come and go, and re-reads a header only when mtime or size change", async () => {
    const catalog = new GgufCatalog({ dir });
    const path = join(dir, "m.gguf");
    const good = gguf(llamaKv, oneTensor, 256);
    await writeFile(path, good);
    expect((await catalog.scan()).models.map((m) => m.error ?? "ok")).toEqual(["ok"]);

    // Same size and mtime: the cached header is used (the junk is not noticed).
    const { atimeMs, mtimeMs } = await stat(path);
    const fh = await open(path, "r+");
    await fh.write(Buffer.from("JUNK"), 0, 4, 0);
    await fh.close();
    await utimes(path, atimeMs / 1000, mtimeMs / 1000);
    expect((await catalog.scan()).models[0].error).toBeUndefined();

    // A new mtime: read again.
    await utimes(path, new Date(), new Date(mtimeMs + 5000));
    expect((await catalog.scan()).models[0].error).toMatch(/unreadable/);

    await writeFile(join(dir, "n.gguf"), good);
    expect((await catalog.scan()).models.map((m) => m.id)).toEqual(["m", "n"]);
    await rm(path);
    expect((await catalog.scan()).models.map((m) => m.id)).toEqual(["n"]);
    expect((await catalog.find("n.gguf"))?.id).toBe("n");
    expect(await catalog.find("m")).toBeUndefined();
  });
});
