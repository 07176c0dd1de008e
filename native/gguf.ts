// Model discovery for the embedded engine: every *.gguf in the models folder is a
// model named after its file. Headers are read with node-llama-cpp's GGUF reader
// (no native code, no weights loaded) and cached by path + mtime + size, so a scan
// every couple of seconds costs a readdir and a stat per file.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { GgmlType, readGgufFileInfo, type GgufFileInfo } from "node-llama-cpp";

export interface GgufModel {
  /** The model name clients use. */
  id: string;
  /** File name in the models folder (first part for split models). */
  file: string;
  path: string;
  /** Bytes on disk (all parts). */
  sizeBytes: number;
  mtimeMs: number;
  /** Changes whenever the file does. */
  version: string;
  /** Context length the model was trained with (GGUF header). */
  contextLength?: number;
  architecture?: string;
  /** general.name from the header. */
  name?: string;
  /** Whether the file carries its own chat template. */
  chatTemplate?: boolean;
  parts: number;
  /** Set when the file cannot be served (unreadable header, truncated data). */
  error?: string;
}

export interface ScanResult {
  /** Whether the folder exists (a missing folder is not an error: no models yet). */
  exists: boolean;
  dir: string;
  models: GgufModel[];
}

export interface CatalogOptions {
  dir: string;
  /** File name (with or without .gguf) -> model name. */
  names?: Record<string, string>;
}

interface HeaderInfo {
  contextLength?: number;
  architecture?: string;
  name?: string;
  chatTemplate?: boolean;
  /** Not a servable model (vision projector, vocabulary-only file): not listed. */
  skip?: boolean;
  error?: string;
}

const SPLIT = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;
/** Big arrays nobody here needs; skipping them keeps header reads fast for large vocabularies. */
const IGNORED_KEYS = ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"];

export class GgufCatalog {
  private readonly dir: string;
  private readonly names: Record<string, string>;
  private readonly cache = new Map<string, { key: string; info: HeaderInfo }>();
  private inFlight: Promise<ScanResult> | null = null;
  private last: ScanResult | null = null;

  constructor(opts: CatalogOptions) {
    this.dir = opts.dir;
    this.names = opts.names ?? {};
  }

  /** Scans the folder; concurrent callers share one scan. */
  scan(): Promise<ScanResult> {
    this.inFlight ??= this.doScan().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** Finds a model by name or file name in the last scan, scanning again if it is not there. */
  async find(name: string): Promise<GgufModel | undefined> {
    const match = (r: ScanResult | null) => r?.models.find((m) => m.id === name) ?? r?.models.find((m) => m.file === name || m.file === `${name}.gguf`);
    return match(this.last) ?? match(await this.scan());
  }

  private async doScan(): Promise<ScanResult> {
    let files: string[];
    try {
      files = await readdir(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") {
        this.cache.clear();
        return (this.last = { exists: false, dir: this.dir, models: [] });
      }
      throw err;
    }
    files = files.filter((f) => f.toLowerCase().endsWith(".gguf")).sort();

    // Group split models ("name-00001-of-00003.gguf") under their first part.
    const groups = new Map<string, { first: string | null; stem: string; parts: string[] }>();
    for (const f of files) {
      const m = SPLIT.exec(f);
      const stem = m ? m[1] : f.slice(0, -".gguf".length);
      const key = m ? `split:${m[1]}` : `file:${f}`;
      const g = groups.get(key) ?? { first: null, stem, parts: [] };
      g.parts.push(f);
      if (!m || Number(m[2]) === 1) g.first = f;
      groups.set(key, g);
    }

    const seen = new Set<string>();
    const ids = new Set<string>();
    const models: GgufModel[] = [];
    await Promise.all(
      [...groups.values()].map(async (g) => {
        if (!g.first) return; // parts without their first file: nothing to load
        const path = join(this.dir, g.first);
        const stats = await Promise.all(g.parts.map((p) => stat(join(this.dir, p)).catch(() => null)));
        if (stats.some((s) => !s || !s.isFile())) return;
        const sizes = stats.map((s) => s!.size);
        const first = stats[g.parts.indexOf(g.first)]!;
        const sizeBytes = sizes.reduce((a, b) => a + b, 0);
        const version = `${Math.trunc(first.mtimeMs)}-${sizeBytes}`;
        seen.add(path);
        let cached = this.cache.get(path);
        if (!cached || cached.key !== version) {
          const partSizes = g.parts.length > 1 ? sizes : [first.size];
          cached = { key: version, info: await readHeader(path, partSizes) };
          this.cache.set(path, cached);
        }
        const info = cached.info;
        if (info.skip) return;
        models.push({
          id: this.nameFor(g.first, g.stem),
          file: g.first,
          path,
          sizeBytes,
          mtimeMs: first.mtimeMs,
          version,
          parts: g.parts.length,
          ...(info.contextLength !== undefined ? { contextLength: info.contextLength } : {}),
          ...(info.architecture !== undefined ? { architecture: info.architecture } : {}),
          ...(info.name !== undefined ? { name: info.name } : {}),
          ...(info.chatTemplate !== undefined ? { chatTemplate: info.chatTemplate } : {}),
          ...(info.error !== undefined ? { error: info.error } : {}),
        });
      }),
    );
    for (const p of this.cache.keys()) if (!seen.has(p)) this.cache.delete(p);

    // Stable order; when two files claim the same name the first file keeps it.
    models.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
    const unique = models.filter((m) => (ids.has(m.id) ? false : (ids.add(m.id), true)));
    return (this.last = { exists: true, dir: this.dir, models: unique });
  }

  private nameFor(file: string, stem: string): string {
    return this.names[file] ?? this.names[stem] ?? stem;
  }
}

/** Reads what the catalog shows from a GGUF header, and checks the file is complete. */
export async function readHeader(path: string, partSizes: number[]): Promise<HeaderInfo> {
  let info: GgufFileInfo;
  try {
    info = await readGgufFileInfo(path, { logWarnings: false, ignoreKeys: IGNORED_KEYS });
  } catch (err) {
    return { error: `unreadable GGUF header: ${(err as Error).message}` };
  }
  const md = info.metadata as unknown as {
    general?: { architecture?: string; name?: string };
    tokenizer?: { chat_template?: string };
  } & Record<string, unknown>;
  const architecture = typeof md.general?.architecture === "string" ? md.general.architecture : undefined;
  const archMd = (architecture ? md[architecture] : undefined) as { context_length?: number } | undefined;
  const out: HeaderInfo = {
    ...(architecture ? { architecture } : {}),
    ...(typeof md.general?.name === "string" ? { name: md.general.name } : {}),
    ...(typeof archMd?.context_length === "number" ? { contextLength: Number(archMd.context_length) } : {}),
    chatTemplate: typeof md.tokenizer?.chat_template === "string" && md.tokenizer.chat_template.trim() !== "",
  };
  if (architecture === "clip" || info.tensorCount === 0) return { ...out, skip: true };

  const firstSize = partSizes[0] ?? 0;
  if (Number(info.infoEndOffset) > firstSize) {
    return { ...out, error: `file is truncated: the GGUF header needs ${Number(info.infoEndOffset)} bytes but the file has ${firstSize}` };
  }
  if (!architecture) return { ...out, error: "corrupt GGUF header: no general.architecture" };
  // Every tensor's data must lie inside its file: a partial download or copy fails here
  // instead of in llama.cpp.
  const ends = new Map<number, number>();
  for (const t of info.fullTensorInfo ?? info.tensorInfo ?? []) {
    const bytes = tensorBytes(t.ggmlType, t.dimensions.map(Number));
    const end = Number(t.fileOffset) + (bytes ?? 1);
    const part = t.filePart ?? 1;
    ends.set(part, Math.max(ends.get(part) ?? 0, end));
  }
  for (const [part, end] of ends) {
    const size = partSizes[part - 1];
    if (size !== undefined && end > size) {
      return { ...out, error: `file is truncated: tensor data ends at byte ${end} but the file has ${size} bytes` };
    }
  }
  return out;
}

/** [elements per block, bytes per block] for the common ggml types. */
const BLOCKS: Partial<Record<number, [number, number]>> = {
  [GgmlType.F32]: [1, 4],
  [GgmlType.F16]: [1, 2],
  [GgmlType.BF16]: [1, 2],
  [GgmlType.F64]: [1, 8],
  [GgmlType.I8]: [1, 1],
  [GgmlType.I16]: [1, 2],
  [GgmlType.I32]: [1, 4],
  [GgmlType.I64]: [1, 8],
  [GgmlType.Q4_0]: [32, 18],
  [GgmlType.Q4_1]: [32, 20],
  [GgmlType.Q5_0]: [32, 22],
  [GgmlType.Q5_1]: [32, 24],
  [GgmlType.Q8_0]: [32, 34],
  [GgmlType.Q8_1]: [32, 36],
  [GgmlType.Q2_K]: [256, 84],
  [GgmlType.Q3_K]: [256, 110],
  [GgmlType.Q4_K]: [256, 144],
  [GgmlType.Q5_K]: [256, 176],
  [GgmlType.Q6_K]: [256, 210],
  [GgmlType.Q8_K]: [256, 292],
};

function tensorBytes(type: number, dims: number[]): number | undefined {
  const b = BLOCKS[type];
  if (!b) return undefined;
  const elements = dims.reduce((a, d) => a * d, 1);
  return Math.ceil(elements / b[0]) * b[1];
}
