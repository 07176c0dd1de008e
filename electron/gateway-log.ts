// The packaged gateway's stdout and stderr (JSON log lines), appended to gateway.log in
// the app's logs folder for a bug report. Two sources into one file: each is piped with
// end:false, so the first to end does not close the file under the other (a later write
// would throw with nobody listening); the folder is made first (it need not exist yet);
// a file that cannot be written is reported once and the output is then drained and
// dropped (a child whose pipe nobody reads blocks); the file is closed when the process
// exits, so a restart does not leave a handle behind.
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";

export interface LogFile {
  /** Stop copying and close the file (idempotent). */
  close(): void;
  /** Settles once the file is closed (everything written flushed), or could not be opened. */
  readonly done: Promise<void>;
}

export function pipeToLogFile(dir: string, sources: (NodeJS.ReadableStream | null | undefined)[], onError: (err: Error) => void = () => {}): LogFile {
  const streams = sources.filter((s): s is NodeJS.ReadableStream => !!s);
  try {
    mkdirSync(dir, { recursive: true });
  } catch {
    // the file's own open fails next, and that error is the one reported
  }
  const file = createWriteStream(join(dir, "gateway.log"), { flags: "a" });
  let failed = false;
  const done = new Promise<void>((resolve) => file.once("close", () => resolve()));
  file.on("error", (err) => {
    if (failed) return;
    failed = true;
    onError(err);
    for (const s of streams) {
      s.unpipe(file);
      s.resume();
    }
  });
  for (const s of streams) s.pipe(file, { end: false });
  let closed = false;
  return {
    done,
    close() {
      if (closed) return;
      closed = true;
      for (const s of streams) s.unpipe(file);
      if (!failed) file.end();
    },
  };
}
