/** Payloads that are byte ranges of files on disk, checked against the file they were registered from. */
import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { OdbError } from '../../core/errors.js';
import type { PayloadSource, ReadOptions } from './source.js';

/** Size of each read from disk. Large enough to keep syscalls few, small enough to stream. */
export const readChunkBytes = 256 * 1024;

/** What identifies one version of a file: a change to any of these means the bytes may differ. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

/**
 * A byte range of a file on disk, registered without copying it into memory. The file is opened
 * per read; if it was replaced or modified since registration, reads fail with
 * ODB_ERR_SOURCE_CHANGED instead of serving different bytes.
 *
 * The checks (stat, open, fstat, close) are synchronous calls on the event loop, as nginx makes
 * them: on metadata the kernel has cached (the back end looked the file up just before) each
 * takes microseconds, while a trip through libuv's thread pool wakes two threads and costs tens
 * to hundreds of microseconds on a small VM, per call. Reading the bytes stays asynchronous
 * (or is the kernel's, by sendfile).
 */
export class FilePayload implements PayloadSource {
  readonly size: number;

  /** `start`/`length` select the range of the file that is this payload's byte 0 onwards. */
  constructor(
    readonly path: string,
    readonly identity: FileIdentity,
    readonly start: number,
    length: number,
  ) {
    this.size = length;
  }

  /** Registers the range `[start, start+length)` of the file as it is now. */
  static async fromPath(path: string, start = 0, length?: number): Promise<FilePayload> {
    const s = statSync(path);
    return new FilePayload(path, identityOf(s), start, length ?? s.size - start);
  }

  async verify(): Promise<void> {
    let now: FileIdentity;
    try {
      now = identityOf(statSync(this.path));
    } catch (err) {
      throw new OdbError('ODB_ERR_SOURCE_CHANGED', `cannot stat ${this.path}`, { cause: err });
    }
    if (!sameIdentity(now, this.identity)) {
      throw new OdbError('ODB_ERR_SOURCE_CHANGED', `${this.path} changed since it was registered`);
    }
  }

  /**
   * Opens the file for a kernel transfer, checked to be the one registered
   * (ODB_ERR_SOURCE_CHANGED otherwise): its descriptor, which the caller closes (`closeSync`);
   * `start` is where byte 0 is in it. O_NONBLOCK: a path swapped for a FIFO cannot block the loop.
   */
  openFd(): number {
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw new OdbError('ODB_ERR_SOURCE_CHANGED', `cannot open ${this.path}`, { cause: err });
    }
    try {
      if (!sameIdentity(identityOf(fstatSync(fd)), this.identity)) {
        throw new OdbError(
          'ODB_ERR_SOURCE_CHANGED',
          `${this.path} changed since it was registered`,
        );
      }
      return fd;
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * Opens the file, checked to be the one registered (ODB_ERR_SOURCE_CHANGED otherwise): what a
   * read serves (`start` is where byte 0 is in it).
   */
  async open(): Promise<FileHandle> {
    const handle = await open(this.path, 'r').catch((err: unknown) => {
      throw new OdbError('ODB_ERR_SOURCE_CHANGED', `cannot open ${this.path}`, { cause: err });
    });
    try {
      if (!sameIdentity(identityOf(await handle.stat()), this.identity)) {
        throw new OdbError(
          'ODB_ERR_SOURCE_CHANGED',
          `${this.path} changed since it was registered`,
        );
      }
      return handle;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async *read(
    start: number,
    end: number | undefined,
    options: ReadOptions = {},
  ): AsyncIterable<Buffer> {
    const allocate = options.allocate ?? ((want: number) => Buffer.allocUnsafe(want));
    const stop = Math.min(end ?? this.size, this.size);
    const handle = await this.open();
    try {
      for (let pos = start; pos < stop;) {
        // A fresh buffer per read: the consumer may still hold the previous one in a socket queue.
        const buf = allocate(Math.min(readChunkBytes, stop - pos));
        const want = buf.length;
        const { bytesRead } = await handle.read(buf, 0, want, this.start + pos);
        if (bytesRead === 0) {
          throw new OdbError('ODB_ERR_SOURCE_CHANGED', `${this.path} is shorter than registered`);
        }
        // Written to in place while being sent (same inode, new mtime or size): the bytes read
        // may mix two versions. Checked before they leave, so a change cuts the body short of
        // its length instead of ending it cleanly with other bytes.
        if (!sameIdentity(identityOf(await handle.stat()), this.identity)) {
          throw new OdbError('ODB_ERR_SOURCE_CHANGED', `${this.path} changed while being sent`);
        }
        pos += bytesRead;
        yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await handle.close();
    }
  }
}

/** The identity fields of a stat result. */
export function identityOf(s: {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}): FileIdentity {
  return { dev: s.dev, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
