/**
 * Backpressure for a writer whose sink takes every byte at once (a captured handler writing into
 * a payload in memory). A socket makes `write()` return false every few kilobytes and emits
 * 'drain' once the kernel took them, so a handler writing in tiny pieces yields to the event loop
 * all the time. A sink in memory would never push back until its window is full: a handler
 * writing one byte at a time would run a million writes in one synchronous burst, and nothing
 * else in the process (the store answering fetches, other requests) would run meanwhile.
 *
 * The pacer restores the socket's rhythm: `wrote()` answers false once `turnBytes` were written in
 * one turn of the event loop, or once the sink is full; 'drain' follows on a later turn, when the
 * sink has room.
 */
export interface WritePacerOptions {
  /** Bytes the writer may write in one turn of the event loop. */
  readonly turnBytes: number;
  /** Writes the writer may make in one turn of the event loop, however small. */
  readonly turnWrites: number;
  /** True while the sink wants no more bytes. */
  readonly sinkFull: () => boolean;
  /** Calls `listener` once the sink has room again. */
  readonly whenSinkHasRoom: (listener: () => void) => void;
  /** Tells the writer it may write again (emits 'drain'). */
  readonly drain: () => void;
}

export class WritePacer {
  readonly #options: WritePacerOptions;
  #bytesThisTurn = 0;
  #writesThisTurn = 0;
  #turnEndScheduled = false;
  #drainOwed = false;
  #waitingForSink = false;

  constructor(options: WritePacerOptions) {
    this.#options = options;
  }

  /** Counts a write of `length` bytes; returns what `write()` should return. */
  wrote(length: number): boolean {
    this.#bytesThisTurn += length;
    this.#writesThisTurn++;
    if (!this.#turnEndScheduled) {
      this.#turnEndScheduled = true;
      setImmediate(this.#endTurn);
    }
    if (
      this.#bytesThisTurn < this.#options.turnBytes &&
      this.#writesThisTurn < this.#options.turnWrites &&
      !this.#options.sinkFull()
    )
      return true;
    this.#drainOwed = true;
    return false;
  }

  readonly #endTurn = (): void => {
    this.#turnEndScheduled = false;
    this.#bytesThisTurn = 0;
    this.#writesThisTurn = 0;
    if (!this.#drainOwed || this.#waitingForSink) return;
    if (!this.#options.sinkFull()) {
      this.#emitDrain();
      return;
    }
    this.#waitingForSink = true;
    this.#options.whenSinkHasRoom(() => {
      this.#waitingForSink = false;
      this.#emitDrain();
    });
  };

  #emitDrain(): void {
    this.#drainOwed = false;
    this.#options.drain();
  }
}
