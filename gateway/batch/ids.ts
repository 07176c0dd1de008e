// Ids of the batch queue's files, batches and result lines: random, made by labgate.
// A file id is also the name of its file on disk, so it is checked against FILE_ID
// before any path is built from it: a client's id can never address anything else.
import { randomBytes } from "node:crypto";

export const FILE_ID = /^file-[0-9a-f]{24}$/;
export const BATCH_ID = /^batch_[0-9a-f]{24}$/;

const random = (): string => randomBytes(12).toString("hex");

/**
 * 12 random bytes as hex, cut from a pool filled 4 KiB at a time: a line id is made per
 * batch item, and one call into the random source per id cost more than the rest of it.
 */
class RandomPool {
  private pool = Buffer.alloc(0);
  private at = 0;

  next(): string {
    if (this.at + 12 > this.pool.length) {
      this.pool = randomBytes(4096);
      this.at = 0;
    }
    const hex = this.pool.toString("hex", this.at, this.at + 12);
    this.at += 12;
    return hex;
  }
}

export const newFileId = (): string => `file-${random()}`;
export const newBatchId = (): string => `batch_${random()}`;
/** The `id` of one line of an output or error file. */
export const newLineId = (): string => `batch_req_${random()}`;
/** newLineId from a pool (see RandomPool), for the worker's lines: one per item. */
export function createLineIds(): () => string {
  const pool = new RandomPool();
  return () => `batch_req_${pool.next()}`;
}
