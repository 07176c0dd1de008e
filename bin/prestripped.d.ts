// Types of bin/prestripped.js (plain JavaScript on purpose, see there) for the TypeScript that imports it.
import type { Worker, WorkerOptions } from "node:worker_threads";

export declare const ROOT: string;
export declare const DEFAULT_JS_DIR: string;
export declare const SOURCE_FOLDERS: string[];
export declare const CAN_STRIP: boolean;
export declare function builtPath(jsDir: string, sourcePath: string): string;
export declare function builtText(source: string): string;
export declare function matchingBuilt(built: string, source: string): string | undefined;
export declare function writeBuilt(path: string, text: string): void;
/** A worker thread running url whose modules load through the stripped build when this thread does. */
export declare function startWorker(url: URL | string, options?: WorkerOptions): Worker;
export declare function usePrestripped(jsDir?: string): { prestripped: number; strippedAtLoad: number };
