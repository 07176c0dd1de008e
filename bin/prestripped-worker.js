// The entry of a labgate worker thread started by startWorker() (prestripped.js) while the
// main thread serves the stripped build: registers the same load hook in this thread (hooks
// are per thread), then runs the worker's real module. startWorker() put the build folder
// and that module's URL first in argv ("" for the folder when the main thread did not trust
// it: then none is read here either); they are taken off so the module sees its own argv.
// The folders are checked again here, silently: the main thread has said what it found.
import { usePrestripped } from "./prestripped.js";

const [jsDir, entry] = process.argv.splice(2, 2);
usePrestripped(jsDir || null, { warn: false });
await import(entry);
