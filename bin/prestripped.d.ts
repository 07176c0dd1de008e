// Types of bin/prestripped.js (plain JavaScript on purpose, see there) for the TypeScript that imports it.
import type { Worker, WorkerOptions } from "node:worker_threads";

export declare const ROOT: string;
export declare const DEFAULT_JS_DIR: string;
export declare const SOURCE_FOLDERS: string[];
export declare const CAN_STRIP: boolean;
/** How every built file's trailer starts. */
export declare const MARK: string;
export declare function builtPath(jsDir: string, sourcePath: string): string;
export declare function builtText(source: string): string;
export declare function matchingBuilt(built: string, source: string): string | undefined;
export declare function isBuiltText(text: string): boolean;
export declare function writeBuilt(path: string, text: string): void;
/** Why someone other than this user (or root) could have written path, or undefined if no one could. */
export declare function untrustedBecause(path: string, kind: "file" | "folder"): string | undefined;
/** A worker thread running url whose modules load through the stripped build when this thread does. */
export declare function startWorker(url: URL | string, options?: WorkerOptions): Worker;
export declare function usePrestripped(jsDir?: string | null, options?: { warn?: boolean }): { prestripped: number; strippedAtLoad: number };
