// The packaged gateway's output file (electron/gateway-log.ts): stdout and stderr into one
// file that the first of them to end does not close, a logs folder that does not exist yet,
// a file that cannot be opened (reported, the output still drained), closed on exit.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { pipeToLogFile } from "../../electron/gateway-log.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), "labgate-gwlog-"));
  dirs.push(d);
  return d;
};

async function until(ok: () => boolean, tries = 200): Promise<boolean> {
  for (let i = 0; i < tries && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  return ok();
}

describe("the gateway's log file", () => {
  it("keeps both streams after the first one ends, makes the folder, and appends across restarts", async () => {
    const logs = join(tmp(), "not", "yet", "there");
    const errors: Error[] = [];
    for (const run of [1, 2]) {
      const out = new PassThrough();
      const err = new PassThrough();
      const log = pipeToLogFile(logs, [out, err], (e) => errors.push(e));
      out.write(`run ${run} stdout\n`);
      out.end(); // stdout ends first...
      await new Promise((r) => setImmediate(r));
      err.write(`run ${run} stderr after stdout ended\n`); // ...stderr still writes
      err.end();
      log.close(); // the process exited
      log.close();
      await log.done;
    }
    expect(readFileSync(join(logs, "gateway.log"), "utf8")).toBe(
      "run 1 stdout\nrun 1 stderr after stdout ended\nrun 2 stdout\nrun 2 stderr after stdout ended\n",
    );
    expect(errors).toEqual([]);
  });

  it("a file that cannot be opened is reported once, and the output is still read (the child never blocks)", async () => {
    const blocker = join(tmp(), "a-file");
    writeFileSync(blocker, "");
    const errors: Error[] = [];
    const out = new PassThrough({ highWaterMark: 16 });
    const log = pipeToLogFile(join(blocker, "logs"), [out, undefined], (e) => errors.push(e));
    await log.done;
    expect(errors).toHaveLength(1);
    for (let i = 0; i < 100; i++) out.write("x".repeat(1024));
    expect(await until(() => out.readableLength === 0 && out.writableLength === 0)).toBe(true);
    expect(errors).toHaveLength(1);
    log.close();
  });
});
