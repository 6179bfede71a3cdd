/**
 * Where a registered payload's bytes come from. The store serves ranges of a source without
 * knowing whether it is memory, a file or generated.
 */
export interface PayloadSource {
  /** Final size in bytes, or undefined while an open (unknown-length) source is still written. */
  readonly size: number | undefined;
  /**
   * Yields the bytes of `[start, end)` in order (`end` undefined: to the end of an open source),
   * waiting for bytes not yet produced. Throws an OdbError when the bytes cannot be had.
   */
  read(start: number, end: number | undefined, options?: ReadOptions): AsyncIterable<Buffer>;
  /**
   * True when `read` yields views of memory the source holds (writing them copies nothing), not
   * copies made for the read.
   */
  readonly yieldsViews?: boolean;
  /** Checks, before a fetch answers, that the bytes can still be had (e.g. the file is unchanged). */
  verify?(): Promise<void>;
  /** The only reader consumed everything before `offset`: memory below it may be freed. */
  discardBefore?(offset: number): void;
  /** The store dropped the entry (released or expired): stop producing, fail waiting readers. */
  abandon?(): void;
}

/** How a read is served. */
export interface ReadOptions {
  /**
   * Memory for a source that copies its bytes (a file): a buffer for at most `want` bytes, maybe
   * fewer (never none). The store server passes one that counts the memory against its budget;
   * without it a source allocates as it likes. Sources that yield views of memory they hold
   * ignore it.
   */
  readonly allocate?: (want: number) => Buffer;
}
