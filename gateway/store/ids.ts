// Request ids: UUIDv7 (time-ordered), so request-log inserts append to the
// primary-key index instead of landing at random pages of it. The one source of
// ids: built by the composition root, so no pool of entropy is shared by module.
import { randomFillSync } from "node:crypto";

/** Ids drawn from a pool of entropy filled 256 ids at a time (one getrandom call, not one per request). */
export class IdSource {
  private static readonly POOL_IDS = 256;
  private readonly pool = Buffer.alloc(IdSource.POOL_IDS * 10);
  private used = IdSource.POOL_IDS;

  /** A UUIDv7 for a request that arrived at `now` (ms since the epoch). */
  next(now: number = Date.now()): string {
    if (this.used === IdSource.POOL_IDS) {
      randomFillSync(this.pool);
      this.used = 0;
    }
    const b = Buffer.allocUnsafe(16);
    b.writeUIntBE(now, 0, 6);
    this.pool.copy(b, 6, this.used * 10, this.used * 10 + 10);
    this.used++;
    b[6] = (b[6]! & 0x0f) | 0x70; // version 7
    b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const h = b.toString("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}
