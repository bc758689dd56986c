// A growable ring buffer of numbers, used by in-order transports (raw, ws) to match replies to call start times.

export class NumberFifo {
  private buf = new Float64Array(256);
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(v: number): void {
    if (this.size === this.buf.length) this.grow();
    this.buf[(this.head + this.size) & (this.buf.length - 1)] = v;
    this.size++;
  }

  /** Removes and returns the oldest value; throws when empty (a reply nobody asked for). */
  shift(): number {
    if (this.size === 0) throw new Error('reply without an outstanding call');
    const v = this.buf[this.head] ?? NaN;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.size--;
    return v;
  }

  private grow(): void {
    const bigger = new Float64Array(this.buf.length * 2);
    for (let i = 0; i < this.size; i++) bigger[i] = this.buf[(this.head + i) & (this.buf.length - 1)] ?? NaN;
    this.buf = bigger;
    this.head = 0;
  }
}
