// bin/labgate.js runs labgate's sources from their stripped copies (npm run build:js,
// bin/prestripped.js) when those match the sources, so Node's TypeScript stripper
// (amaro) never loads; without a build, or with a stale copy, it runs the .ts as
// Node strips it and writes the copy for the next start. A build folder someone else
// could write is not used at all. Each case is a real `labgate version` in a fresh Node
// process, with its own build folder (LABGATE_JS_DIR).
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "bin", "labgate.js");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
/** Preloaded into the child: says on exit whether Node's TypeScript stripper was loaded. */
const PROBE = `data:text/javascript,process.on("exit",()=>process.stderr.write("\\nstripper-loaded="+process.moduleLoadList.some((m)=>m.includes("amaro"))+"\\n"))`;
const MARK = "\n// labgate-prestripped ";
const TRAILER = /^\n\/\/ labgate-prestripped node:(v[\d.]+) mode:strip source-sha256:([0-9a-f]{64}) built-sha256:([0-9a-f]{64})\n$/;
const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
/** Whether this process can give a file away to another user (the ownership cases need it). */
const IS_ROOT = process.getuid?.() === 0;
/** The stderr lines labgate printed itself (the probe's report aside). */
const warnings = (stderr: string): string[] => stderr.split("\n").filter((l) => l.startsWith("labgate: "));

/**
 * cli.js of a build with a line added, and a trailer that vouches for it as the build's
 * own would: its source's hash kept, the hash of the new text computed, as anyone able
 * to read the source could. Only the folder's ownership can refuse this.
 */
function forgedCli(jsDir: string): string {
  const text = readFileSync(join(jsDir, "gateway", "cli.js"), "utf8");
  const at = text.lastIndexOf(MARK);
  const m = TRAILER.exec(text.slice(at));
  if (!m) throw new Error(`no trailer in cli.js: ${text.slice(at)}`);
  const stripped = `${text.slice(0, at)}\nprocess.stderr.write("ran-the-planted-line\\n");`;
  return `${stripped}${MARK}node:${m[1]} mode:strip source-sha256:${m[2]} built-sha256:${sha256(stripped)}\n`;
}
/**
 * The same for every thread of a `labgate serve` (workers run the preloads too: they inherit
 * execArgv): each writes <pid>-<threadId>.json into LABGATE_PROBE_DIR as it ends, and a
 * worker also before each message it sends (by then its modules have loaded), since a
 * terminated worker gets no exit event.
 */
const THREAD_PROBE = String.raw`
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { isMainThread, threadId } from "node:worker_threads";
const record = () => writeFileSync(join(process.env.LABGATE_PROBE_DIR, process.pid + "-" + threadId + ".json"),
  JSON.stringify({ pid: process.pid, main: isMainThread, stripperLoaded: process.moduleLoadList.some((m) => m.includes("amaro")) }));
process.on("exit", record);
if (!isMainThread) {
  const post = MessagePort.prototype.postMessage;
  MessagePort.prototype.postMessage = function (...args) { record(); return post.apply(this, args); };
}
`;

interface ServeRun {
  analytics: number;
  gate: { status: number; verdict?: string };
  chat: { status: number; object?: string };
  /** Each thread's report: whether it loaded the stripper. */
  threads: { pid: number; main: boolean; stripperLoaded: boolean }[];
  output: string;
}

/**
 * `labgate serve` (bin at binPath) with the embedded demo model only, a file-backed
 * request log, and the requests that start each of its worker threads: an analytics
 * query, the readiness gate, and a chat with the demo model (the engine's worker).
 */
async function serveWithWorkers(binPath: string, env: NodeJS.ProcessEnv, cwd: string): Promise<ServeRun> {
  const config = join(dir, "labgate.yaml");
  writeFileSync(config, ["providers:", "  embedded: {type: embedded, threads: 1, gpu: false}", "models: {}", ""].join("\n"));
  const probe = join(dir, "thread-probe.mjs");
  writeFileSync(probe, THREAD_PROBE);
  const probeDir = mkdtempSync(join(dir, "probe-"));
  const args = ["--import", pathToFileURL(probe).href, binPath, "serve", "--config", config, "--data-dir", join(dir, "data"), "--models-dir", join(dir, "models"), "--port", "0"];
  const child = spawn(process.execPath, args, { cwd, env: { ...env, NODE_OPTIONS: "", LABGATE_LOG_LEVEL: "info", LABGATE_PROBE_DIR: probeDir }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output += b.toString("utf8")));
  child.stderr.on("data", (b: Buffer) => (output += b.toString("utf8")));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    let url: string | undefined;
    for (let i = 0; i < 600 && !url && child.exitCode === null; i++) {
      url = /"url":"(http:\/\/[^"]+)"/.exec(output)?.[1];
      if (!url) await new Promise((r) => setTimeout(r, 100));
    }
    if (!url) throw new Error(`labgate serve did not start:\n${output.slice(-3000)}`);
    const analytics = (await fetch(`${url}/admin/analytics/spend`)).status;
    const gateRes = await fetch(`${url}/admin/gate`);
    const gate = { status: gateRes.status, verdict: ((await gateRes.json()) as { verdict?: string }).verdict };
    const chatRes = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "stories260K", messages: [{ role: "user", content: "Once upon a time" }], max_tokens: 4, seed: 1 }),
    });
    const chat = { status: chatRes.status, object: ((await chatRes.json()) as { object?: string }).object };
    child.kill("SIGTERM");
    await exited;
    // labgate's own threads (node-llama-cpp may start helper processes, which run the probe too).
    const threads = readdirSync(probeDir)
      .map((f) => JSON.parse(readFileSync(join(probeDir, f), "utf8")) as ServeRun["threads"][number])
      .filter((t) => t.pid === child.pid);
    return { analytics, gate, chat, threads, output };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  }
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "labgate-prestripped-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function build(jsDir: string): void {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.js"), jsDir], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/build:js: .*: \d+ written, 0 up to date, 0 removed/);
}

function version(jsDir: string): { stdout: string; stderr: string; stripperLoaded: boolean } {
  const env: NodeJS.ProcessEnv = { ...process.env, LABGATE_JS_DIR: jsDir, NODE_OPTIONS: "" };
  const r = spawnSync(process.execPath, ["--import", PROBE, BIN, "version"], { cwd: ROOT, env, encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  const m = /stripper-loaded=(true|false)/.exec(r.stderr);
  if (!m) throw new Error(`the probe did not report:\n${r.stderr}`);
  return { stdout: r.stdout.trim(), stderr: r.stderr, stripperLoaded: m[1] === "true" };
}

describe("bin/labgate.js and the stripped build", () => {
  it("with a build, runs the built JavaScript: Node's TypeScript stripper never loads, and the build is not rewritten", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const before = lstatSync(cli);
    const r = version(jsDir);
    expect(r.stdout).toBe(VERSION);
    expect(warnings(r.stderr)).toEqual([]);
    expect(r.stripperLoaded).toBe(false);
    expect(lstatSync(cli).ino).toBe(before.ino);
  });

  it("a built copy whose text was changed (its source's hash left valid) is not run: the source is stripped at load and the copy rewritten", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const fresh = readFileSync(cli, "utf8");
    const at = fresh.lastIndexOf(MARK);
    writeFileSync(cli, `${fresh.slice(0, at)}\nprocess.stderr.write("ran-the-planted-line\\n");${fresh.slice(at)}`);
    const r = version(jsDir);
    expect(r.stdout).toBe(VERSION);
    expect(r.stderr).not.toContain("ran-the-planted-line");
    expect(r.stripperLoaded).toBe(true);
    expect(readFileSync(cli, "utf8")).toBe(fresh);
  });

  it("a build made by another Node version is not run: it is stripped again and rewritten for this one", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const fresh = readFileSync(cli, "utf8");
    expect(fresh.slice(fresh.lastIndexOf(MARK))).toMatch(TRAILER);
    expect(TRAILER.exec(fresh.slice(fresh.lastIndexOf(MARK)))?.[1]).toBe(process.version);
    writeFileSync(cli, fresh.replace(`node:${process.version} `, "node:v22.0.0 "));
    const r = version(jsDir);
    expect(r.stdout).toBe(VERSION);
    expect(r.stripperLoaded).toBe(true);
    expect(readFileSync(cli, "utf8")).toBe(fresh);
  });

  it("a build folder others can write is not used, not even a copy with a valid trailer: one warning line, the sources stripped at load, the folder untouched", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const forged = forgedCli(jsDir);
    writeFileSync(cli, forged);
    chmodSync(jsDir, 0o775);
    const r = version(jsDir);
    expect(r.stdout).toBe(VERSION);
    expect(r.stderr).not.toContain("ran-the-planted-line");
    expect(r.stripperLoaded).toBe(true);
    const lines = warnings(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`${jsDir} is group-writable`);
    expect(readFileSync(cli, "utf8")).toBe(forged);
    // The same folder made private again: the forged copy runs, since its trailer is valid. The
    // ownership check is what refused it above; the trailer cannot (see bin/prestripped.js).
    chmodSync(jsDir, 0o755);
    const trusted = version(jsDir);
    expect(trusted.stderr).toContain("ran-the-planted-line");
    expect(trusted.stripperLoaded).toBe(false);
  });

  it("a folder below the build that others can write is not used either, nor a build folder that is a symlink", () => {
    const real = join(dir, "real");
    build(real);
    const config = join(real, "gateway", "config");
    chmodSync(config, 0o757);
    const r = version(real);
    expect(r.stripperLoaded).toBe(true);
    expect(warnings(r.stderr)).toEqual([expect.stringContaining(`${config} is other-writable`)]);
    chmodSync(config, 0o755);
    const link = join(dir, "link");
    symlinkSync(real, link);
    const viaLink = version(link);
    expect(viaLink.stripperLoaded).toBe(true);
    expect(warnings(viaLink.stderr)).toEqual([expect.stringContaining(`${link} is a symlink`)]);
  });

  it("a built copy that is a symlink, or writable by others, is not run: stripped at load and replaced by a private file", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const fresh = readFileSync(cli, "utf8");
    const elsewhere = join(dir, "elsewhere.js");
    writeFileSync(elsewhere, forgedCli(jsDir));
    rmSync(cli);
    symlinkSync(elsewhere, cli);
    const r = version(jsDir);
    expect(r.stderr).not.toContain("ran-the-planted-line");
    expect(r.stripperLoaded).toBe(true);
    expect(warnings(r.stderr)).toEqual([expect.stringContaining(`${cli} is a symlink`)]);
    expect(lstatSync(cli).isSymbolicLink()).toBe(false);
    expect(readFileSync(cli, "utf8")).toBe(fresh);

    writeFileSync(cli, forgedCli(jsDir));
    chmodSync(cli, 0o666);
    const writable = version(jsDir);
    expect(writable.stderr).not.toContain("ran-the-planted-line");
    expect(warnings(writable.stderr)).toEqual([expect.stringContaining(`${cli} is group-writable`)]);
    expect(lstatSync(cli).mode & 0o022).toBe(0);
    expect(version(jsDir).stripperLoaded).toBe(false);
  });

  it.skipIf(!IS_ROOT)("a build folder or copy owned by another user is not used", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    writeFileSync(cli, forgedCli(jsDir));
    chownSync(cli, 65534, 65534);
    const file = version(jsDir);
    expect(file.stderr).not.toContain("ran-the-planted-line");
    expect(warnings(file.stderr)).toEqual([expect.stringContaining(`${cli} is owned by uid 65534`)]);
    chownSync(jsDir, 65534, 65534);
    const folder = version(jsDir);
    expect(folder.stripperLoaded).toBe(true);
    expect(warnings(folder.stderr)).toEqual([expect.stringContaining(`${jsDir} is owned by uid 65534`)]);
  });

  it("labgate serve from the build: its worker threads (analytics, readiness gate, embedded engine) load the build too, without the stripper", async () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const r = await serveWithWorkers(BIN, { ...process.env, LABGATE_JS_DIR: jsDir }, ROOT);
    expect(r.analytics, r.output.slice(-3000)).toBe(200);
    expect(r.gate.status).toBe(200);
    expect(r.gate.verdict).toMatch(/^(PASS|FAIL)$/);
    expect(r.chat, r.output.slice(-3000)).toEqual({ status: 200, object: "chat.completion" });
    expect(r.threads.filter((t) => t.main)).toHaveLength(1);
    // analytics, gate and engine at least (the GPU inventory's worker, eval'd JavaScript, may report too)
    expect(r.threads.filter((t) => !t.main).length, r.output.slice(-3000)).toBeGreaterThanOrEqual(3);
    expect(r.threads.filter((t) => t.stripperLoaded)).toEqual([]);
  }, 120_000);

  it("labgate serve with a build folder others can write: one warning line for the whole process (its workers do not repeat it), every thread strips at load, and it serves", async () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    chmodSync(jsDir, 0o775);
    const r = await serveWithWorkers(BIN, { ...process.env, LABGATE_JS_DIR: jsDir }, ROOT);
    expect(r.analytics, r.output.slice(-3000)).toBe(200);
    expect(r.chat, r.output.slice(-3000)).toEqual({ status: 200, object: "chat.completion" });
    expect(r.output.match(/^labgate: not using the stripped build/gm)).toHaveLength(1);
    expect(r.threads.filter((t) => !t.main && t.stripperLoaded).length, r.output.slice(-3000)).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("LABGATE_JS_DIR=off: the same workers strip their .ts at load (the probe above can see the stripper)", async () => {
    const r = await serveWithWorkers(BIN, { ...process.env, LABGATE_JS_DIR: "off" }, ROOT);
    expect(r.analytics).toBe(200);
    expect(r.chat.status).toBe(200);
    expect(r.threads.filter((t) => !t.main && t.stripperLoaded).length, r.output.slice(-3000)).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("without a build, runs the .ts sources (Node strips them) and writes the build, so the next start needs no stripper", () => {
    const jsDir = join(dir, "missing");
    const first = version(jsDir);
    expect(first.stdout).toBe(VERSION);
    expect(first.stripperLoaded).toBe(true);
    expect(readFileSync(join(jsDir, "gateway", "cli.js"), "utf8")).toContain(MARK);
    const second = version(jsDir);
    expect(second.stdout).toBe(VERSION);
    expect(second.stripperLoaded).toBe(false);
  });

  it("a built copy that no longer matches its source is not run: the source is stripped at load and the copy rewritten", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const cli = join(jsDir, "gateway", "cli.js");
    const fresh = readFileSync(cli, "utf8");
    // As if the source had been edited since the build: another source's hash, and code that would fail.
    const stale = `throw new Error("stale copy ran");`;
    writeFileSync(cli, `${stale}${MARK}node:${process.version} mode:strip source-sha256:${"0".repeat(64)} built-sha256:${sha256(stale)}\n`);
    const r = version(jsDir);
    expect(r.stdout).toBe(VERSION);
    expect(r.stripperLoaded).toBe(true);
    expect(readFileSync(cli, "utf8")).toBe(fresh);
  });

  it("LABGATE_JS_DIR=off runs the .ts sources as Node strips them, and writes nothing", () => {
    const r = version("off");
    expect(r.stdout).toBe(VERSION);
    expect(r.stripperLoaded).toBe(true);
    expect(existsSync(join(ROOT, "off"))).toBe(false);
  });

  it("the build rewrites only what changed and removes copies whose source is gone", () => {
    const jsDir = join(dir, "js");
    build(jsDir);
    const orphan = join(jsDir, "gateway", "gone.js");
    writeFileSync(orphan, readFileSync(join(jsDir, "gateway", "app.js"), "utf8"));
    writeFileSync(join(jsDir, "gateway", "app.js"), "stale\n");
    const r = spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.js"), jsDir], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 1 written, \d+ up to date, 1 removed/);
    expect(existsSync(orphan)).toBe(false);
    expect(readFileSync(join(jsDir, "gateway", "app.js"), "utf8")).toContain(MARK);
  });

  it("building into a folder of one's own removes only the copies it wrote: the folder's other .js files stay", () => {
    const project = join(dir, "project");
    const theirs = { "src/app.js": "console.log('app');\n", "gateway/handwritten.js": "export {};\n", "native/notes.js": "export {};\n// labgate-prestripped by hand, on a line that is not the last\nconsole.log(1);\n" };
    for (const [path, text] of Object.entries(theirs)) {
      mkdirSync(join(project, path, ".."), { recursive: true });
      writeFileSync(join(project, path), text);
    }
    build(project);
    // A copy the build wrote whose source is gone (the trailer of an older labgate too).
    writeFileSync(join(project, "gateway", "renamed.js"), `export {};${MARK}sha256:${"0".repeat(64)}\n`);
    const r = spawnSync(process.execPath, [join(ROOT, "scripts", "build-js.js"), project], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/: 0 written, \d+ up to date, 1 removed/);
    expect(existsSync(join(project, "gateway", "renamed.js"))).toBe(false);
    for (const [path, text] of Object.entries(theirs)) expect(readFileSync(join(project, path), "utf8")).toBe(text);
  });

  it("labgate installed inside a node_modules folder runs, through the hook, though Node refuses to strip types there; its worker threads too", async () => {
    const pkg = join(dir, "node_modules", "labgate");
    mkdirSync(pkg, { recursive: true });
    for (const part of ["bin", "gateway", "native", "resources", "package.json"]) cpSync(join(ROOT, part), join(pkg, part), { recursive: true });
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
    const run = (jsDir?: string) =>
      spawnSync(process.execPath, [join(pkg, "bin", "labgate.js"), "version"], {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: "", LABGATE_JS_DIR: jsDir ?? "" },
        encoding: "utf8",
        timeout: 60_000,
      });
    const plain = run("off");
    expect(plain.status).not.toBe(0);
    expect(plain.stderr).toContain("ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING");
    const hooked = run();
    expect(hooked.stderr).toBe("");
    expect(hooked.stdout.trim()).toBe(VERSION);
    expect(existsSync(join(pkg, "dist", "js", "gateway", "cli.js"))).toBe(true);
    // Its worker threads too: Node would refuse their .ts as well.
    const served = await serveWithWorkers(join(pkg, "bin", "labgate.js"), { ...process.env, LABGATE_JS_DIR: "" }, dir);
    expect(served.analytics, served.output.slice(-3000)).toBe(200);
    expect(served.gate.status).toBe(200);
    expect(served.chat, served.output.slice(-3000)).toEqual({ status: 200, object: "chat.completion" });
    expect(served.output).not.toContain("ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING");
  }, 180_000);
});
