// Request ids: UUIDv7 (time-ordered), so request-log inserts append to the
// primary-key index instead of landing at random pages of it. The one source of
// ids: built by the composition root, so no pool of entropy is shared by module.
// Response and tool-call ids that adapters make (chatcmpl-…, call_…) come from it too.
import { randomFillSync } from "node:crypto";

/** Ids drawn from a pool of entropy filled 2560 bytes at a time (one getrandom call, not one per request). */
export class IdSource {
  private static readonly POOL_BYTES = 2560;
  private readonly pool = Buffer.alloc(IdSource.POOL_BYTES);
  /** Bytes of the pool already handed out; a full count means refill before the next draw. */
  private used = IdSource.POOL_BYTES;

  /** A UUIDv7 for a request that arrived at `now` (ms since the epoch). */
  next(now: number = Date.now()): string {
    const b = Buffer.allocUnsafe(16);
    b.writeUIntBE(now, 0, 6);
    this.draw(b, 6, 10);
    b[6] = (b[6]! & 0x0f) | 0x70; // version 7
    b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const h = b.toString("hex");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  /** `bytes` random bytes as text: the opaque part of an id that needs no time order (a response's, a tool call's). */
  token(bytes: number, encoding: "hex" | "base64url"): string {
    const b = Buffer.allocUnsafe(bytes);
    this.draw(b, 0, bytes);
    return b.toString(encoding);
  }

  /** Copies `length` bytes of fresh entropy into target at offset. */
  private draw(target: Buffer, offset: number, length: number): void {
    if (length > IdSource.POOL_BYTES) {
      randomFillSync(target, offset, length);
      return;
    }
    if (this.used + length > IdSource.POOL_BYTES) {
      randomFillSync(this.pool);
      this.used = 0;
    }
    this.pool.copy(target, offset, this.used, this.used + length);
    this.used += length;
  }
}
