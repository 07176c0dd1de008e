// A newcomer's first minutes, through the real `labgate` command (child processes):
// an old Node gets one line saying what to install; mistakes on the command line, in
// the environment and in the folders given get one line and a non-zero exit, never a
// stack trace nor a gateway quietly started on some other port; and on a machine with
// nothing else installed, the README's own first request gets an answer from the demo
// model, until the models folder holds a GGUF of its own.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

const ROOT = new URL("../../", import.meta.url).pathname;
const BIN = join(ROOT, "bin/labgate.js");
const TEST_MODEL = new URL("../../../shared/models/stories260K.gguf", import.meta.url).pathname;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "labgate-first-run-"));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** The environment of a fresh shell: no cloud keys, no LABGATE_* settings, an empty home. */
function freshEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("LABGATE_") || k.startsWith("OPENAI_") || k.startsWith("ANTHROPIC_") || k.startsWith("AZURE_")) continue;
    env[k] = v;
  }
  return { ...env, HOME: home, XDG_DATA_HOME: join(home, ".local/share"), ...extra };
}

const children = new Set<ChildProcess>();
afterEach(() => {
  // A command that should have stopped but did not (the failure being tested) is not left running.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { env?: NodeJS.ProcessEnv; node?: string; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = opts.node === "npm" ? ["npm", args] : [opts.node ?? process.execPath, [BIN, ...args]];
    const p = spawn(cmd, argv, { env: opts.env ?? freshEnv(join(tmp, "home")), cwd: opts.cwd ?? ROOT, stdio: ["ignore", "pipe", "pipe"] });
    children.add(p);
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("error", reject);
    p.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** One line on stderr matching `pattern`, nothing on stdout, no stack trace, a non-zero exit. */
function expectOneLine(r: Run, pattern: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).not.toBe(0);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr.trimEnd()).toMatch(pattern);
  expect(r.stdout).toBe("");
}

// Each case starts one or two node processes; generous timeouts for a busy machine (no timing is asserted).
describe("CLI mistakes get one line and a non-zero exit", { timeout: 60_000 }, () => {
  // Each would otherwise start a gateway: give it a data folder of its own.
  const serve = (...args: string[]) => run(["serve", "--data-dir", join(tmp, "data-mistakes"), ...args]);

  it("an unknown option", async () => {
    expectOneLine(await serve("--bogus"), /^labgate: unknown option --bogus \(usage: labgate serve /);
  });

  it("an unexpected argument", async () => {
    expectOneLine(await serve("now"), /^labgate: unexpected argument "now"/);
  });

  it("--port with no value", async () => {
    expectOneLine(await serve("--port"), /^labgate: --port needs a value/);
    expectOneLine(await serve("--port", "--host", "127.0.0.1"), /^labgate: --port needs a value/);
  });

  it("--port with an empty value (not 'any port')", async () => {
    expectOneLine(await serve("--port", ""), /^labgate: --port needs a value/);
    expectOneLine(await serve("--port="), /^labgate: --port needs a value/);
  });

  it.each(["0x1260", "1e3", "4000.0", " 4000", "65536", "-1", "+4000", "port"])("--port %j is not a decimal port number", async (port) => {
    const r = await serve(`--port=${port}`);
    expectOneLine(r, /^labgate: --port must be a port number from 0 to 65535 \(0: any free port\), got "/);
    expect(r.stderr).toContain(JSON.stringify(port));
  });

  it("LABGATE_PORT is checked the same way", async () => {
    const r = await run(["serve", "--data-dir", join(tmp, "data-mistakes")], { env: freshEnv(join(tmp, "home"), { LABGATE_PORT: "0x1260" }) });
    expectOneLine(r, /^labgate: LABGATE_PORT must be a port number from 0 to 65535 \(0: any free port\), got "0x1260"/);
  });

  it("a data folder under a regular file fails at once, naming the file", async () => {
    const file = join(tmp, "a-file");
    writeFileSync(file, "not a folder");
    const r = await run(["serve", "--port", "0", "--data-dir", join(file, "sub", "deeper")]);
    expectOneLine(r, new RegExp(`^labgate: cannot create the data folder ${join(file, "sub", "deeper")}: ${file} is a file, not a folder`));
    expectOneLine(await run(["serve", "--port", "0", "--data-dir", file]), /is a file, not a folder/);
  });

  // mkdirSync's recursive mode spins forever where the file system answers ENOENT for a
  // level it refuses to create: this is where `serve` hung at 100% CPU.
  it.skipIf(!existsSync("/proc/self"))("a data folder the file system refuses to create fails at once", async () => {
    const r = await run(["serve", "--port", "0", "--data-dir", "/proc/self/labgate-data/sub"]);
    expectOneLine(r, /^labgate: cannot create the data folder \/proc\/self\/labgate-data\/sub: mkdir \/proc\/self\/labgate-data: /);
  });

  it("an unset environment variable behind server.master_key", async () => {
    const cfg = join(tmp, "master-key.yaml");
    writeFileSync(cfg, "server: {master_key: env:LABGATE_TEST_UNSET_MASTER_KEY}\nproviders: {}\nmodels: {}\n");
    const r = await run(["serve", "--config", cfg, "--port", "0", "--data-dir", join(tmp, "data-mistakes")]);
    expectOneLine(r, /^labgate: server\.master_key in .*master-key\.yaml is env:LABGATE_TEST_UNSET_MASTER_KEY, but environment variable LABGATE_TEST_UNSET_MASTER_KEY is not set/);
  });

  it("a config file that is not there", async () => {
    const missing = join(tmp, "labgate.yml");
    expectOneLine(await serve("--config", missing), new RegExp(`^labgate: cannot read the config file ${missing}: no such file$`));
    const r = await run(["serve", "--data-dir", join(tmp, "data-mistakes")], { env: freshEnv(join(tmp, "home"), { LABGATE_CONFIG: tmp }) });
    expectOneLine(r, new RegExp(`^labgate: cannot read the config file ${tmp} \\(from LABGATE_CONFIG\\): it is a folder$`));
  });

  it("an unknown command", async () => {
    expectOneLine(await run(["serv"]), /^labgate: unknown command "serv" \(commands: serve, /);
  });
});

/** A Node older than 22 on this machine (CI ships Node 20 at the system path), if any. */
function oldNode(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/bin", "/usr/local/bin", "/bin"];
  for (const dir of dirs) {
    const node = join(dir, "node");
    if (!dir || !existsSync(node)) continue;
    const v = spawnSync(node, ["--version"], { encoding: "utf8" }).stdout?.trim() ?? "";
    const major = Number(/^v(\d+)\./.exec(v)?.[1]);
    if (major >= 14 && major < 22) return node;
  }
  return undefined;
}
const OLD_NODE = oldNode();

describe("an old Node", { timeout: 60_000 }, () => {
  const message = /^labgate needs Node\.js >= 22\.18 \(this is v\d+\.\d+\.\d+\): install it from https:\/\/nodejs\.org or with `nvm install 22`$/m;

  it.skipIf(!OLD_NODE)("gets one line saying which Node is needed and how to get it, and exit 1", async () => {
    const r = await run(["serve"], { node: OLD_NODE });
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toContain("ERR_UNKNOWN_FILE_EXTENSION");
  });

  // `npm start` as a newcomer types it, with the old Node first on PATH.
  const npm = OLD_NODE ? join(dirname(OLD_NODE), "npm") : undefined;
  it.skipIf(!npm || !existsSync(npm))("npm start says the same", async () => {
    const env = freshEnv(join(tmp, "home"), { PATH: `${dirname(OLD_NODE!)}${delimiter}${process.env.PATH}` });
    const r = await run(["start"], { node: "npm", env });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(message);
    expect(r.stdout + r.stderr).not.toContain("ERR_UNKNOWN_FILE_EXTENSION");
    expect(r.stdout + r.stderr).not.toMatch(/^\s+at /m);
  });
});

/** The README's first example request: its JSON body, exactly as written. */
function readmeExample(): { body: string; model: string } {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const m = /curl localhost:4000\/v1\/chat\/completions -H 'content-type: application\/json' \\\n\s*-d '([^']+)'/.exec(readme);
  if (!m) throw new Error("README.md has no curl example of /v1/chat/completions");
  return { body: m[1]!, model: (JSON.parse(m[1]!) as { model: string }).model };
}

describe("a first run on a machine with nothing else installed", () => {
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.on("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  });

  it("the README's first request is answered by the demo model, until the models folder has a GGUF of its own", async () => {
    const home = mkdtempSync(join(tmp, "home-"));
    const env = freshEnv(home);
    const dataDir = join(env.XDG_DATA_HOME!, "labgate");
    // `npm start` is `node bin/labgate.js serve`; port 0 because 4000 may be taken here.
    child = spawn(process.execPath, [BIN, "serve", "--port", "0"], { env, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await expect.poll(() => out, { timeout: 20_000 }).toMatch(/labgate listening on http:\/\/127\.0\.0\.1:\d+/);
    const url = /labgate listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;

    const { body, model } = readmeExample();
    expect(model).toBe("stories260K");
    const ask = (b: string) => fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: b });
    const res = await ask(body);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-routed-provider")).toBe("embedded");
    const answer = (await res.json()) as { object: string; model: string; choices: { message: { role: string; content: string } }[] };
    expect(answer).toMatchObject({ object: "chat.completion", model: "stories260K" });
    expect(answer.choices[0]!.message.role).toBe("assistant");
    expect(answer.choices[0]!.message.content.length).toBeGreaterThan(0);

    // /v1/models says which model that is, and that it is the demo.
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string; owned_by: string; demo?: boolean }[] };
    expect(models.data).toContainEqual(expect.objectContaining({ id: "stories260K", owned_by: "embedded", demo: true }));
    // The default models folder was made, so the user sees where their models go.
    expect(existsSync(join(dataDir, "models"))).toBe(true);

    // A GGUF of the user's own: the demo is no longer served, at once, and no longer listed.
    copyFileSync(TEST_MODEL, join(dataDir, "models", "mine.gguf"));
    // (502 while the router still lists it from the last discovery round, 404 after.)
    const after = await ask(body);
    expect(after.status).toBeGreaterThanOrEqual(400);
    expect(((await after.json()) as { error: { code: string } }).error.code).toBe("not_found");
    // The next discovery round lists the user's model instead, and routes to it.
    const ids = async () => ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
    await expect.poll(async () => (await ids()).includes("stories260K"), { timeout: 20_000 }).toBe(false);
    expect(await ids()).toContain("mine");
    expect((await ask(body)).status).toBe(404);
    const mine = await ask(JSON.stringify({ ...JSON.parse(body), model: "mine" }));
    expect(mine.status).toBe(200);
    expect(((await mine.json()) as { model: string }).model).toBe("mine");
  }, 60_000);
});
