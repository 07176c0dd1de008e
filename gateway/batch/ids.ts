// Ids of the batch queue's files, batches and result lines: random, made by labgate.
// A file id is also the name of its file on disk, so it is checked against FILE_ID
// before any path is built from it: a client's id can never address anything else.
import { randomBytes } from "node:crypto";

export const FILE_ID = /^file-[0-9a-f]{24}$/;
export const BATCH_ID = /^batch_[0-9a-f]{24}$/;

const random = (): string => randomBytes(12).toString("hex");

export const newFileId = (): string => `file-${random()}`;
export const newBatchId = (): string => `batch_${random()}`;
/** The `id` of one line of an output or error file. */
export const newLineId = (): string => `batch_req_${random()}`;
