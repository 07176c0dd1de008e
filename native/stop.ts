// OpenAI `stop` strings matched on the generated text (not on token boundaries):
// the answer ends exactly before the first stop string, and text that might be the
// start of a stop string is held back until it is known not to be.

export class StopMatcher {
  private readonly stops: string[];
  private buffer = "";
  private done = false;

  constructor(stops: readonly string[]) {
    this.stops = stops.filter((s) => s !== "");
  }

  get active(): boolean {
    return this.stops.length > 0;
  }

  get stopped(): boolean {
    return this.done;
  }

  /** Feeds generated text; returns what can be released now and whether a stop string was hit. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.done) return { emit: "", stopped: true };
    if (this.stops.length === 0) return { emit: text, stopped: false };
    this.buffer += text;
    let first = -1;
    for (const s of this.stops) {
      const i = this.buffer.indexOf(s);
      if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    if (first >= 0) {
      const emit = this.buffer.slice(0, first);
      this.buffer = "";
      this.done = true;
      return { emit, stopped: true };
    }
    const hold = this.heldBack();
    const emit = this.buffer.slice(0, this.buffer.length - hold);
    this.buffer = this.buffer.slice(this.buffer.length - hold);
    return { emit, stopped: false };
  }

  /** At the end of generation: whatever was held back is text after all. */
  flush(): string {
    if (this.done) return "";
    const rest = this.buffer;
    this.buffer = "";
    return rest;
  }

  /** Length of the longest buffer suffix that is a proper prefix of a stop string. */
  private heldBack(): number {
    let best = 0;
    for (const s of this.stops) {
      const max = Math.min(s.length - 1, this.buffer.length);
      for (let n = max; n > best; n--) {
        if (this.buffer.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
