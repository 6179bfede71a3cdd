/** Locating a file under a served directory, and the facts its responses need. */
import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
  type Stats,
} from 'node:fs';
import { extname, join, normalize, relative, resolve, sep } from 'node:path';
import { identityOf, type FileIdentity } from '../store/payloads/file.js';
import type { Representation } from './representation.js';

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
};

/**
 * What symbolic links under the root may do (like nginx's `disable_symlinks`):
 * `inside` — followed when what they lead to lies in the root (the default);
 * `none` — never followed (a link in the root directory's own path is still fine);
 * `any` — followed anywhere (a link to `/etc` serves `/etc/shadow` to whoever asks).
 */
export type SymlinkPolicy = 'inside' | 'none' | 'any';

/** A regular file found under the root. */
export interface StaticFile {
  /** The path to open: free of links (unless the policy is `any`). */
  readonly path: string;
  /** What was checked: a file opened later must be this one (FilePayload compares). */
  readonly identity: FileIdentity;
  readonly representation: Representation;
}

/** Counters of a {@link StaticRoot}. */
export interface StaticRootStats {
  /** Lookups refused because a symbolic link led out of the root (or any link, with `none`). */
  refusedSymlinks: number;
  /** Lookups refused because they named a file that is never served (the key file). */
  refusedNeverServed: number;
}

/**
 * The served directory of a back end: finds the file a URL path names, under the link policy.
 *
 * The lookups (realpath, open, fstat, readlink) are synchronous calls on the event loop, as
 * nginx makes them: on cached metadata each takes microseconds, where a trip through libuv's
 * thread pool costs a wake-up of two threads per call, which on a small VM is tens to hundreds
 * of microseconds, several times per request. The open is O_NONBLOCK, so a path that names a
 * FIFO cannot block the loop.
 */
export class StaticRoot {
  readonly stats: StaticRootStats = { refusedSymlinks: 0, refusedNeverServed: 0 };
  readonly #root: string;
  readonly #policy: SymlinkPolicy;
  readonly #neverServe: readonly string[];

  /**
   * `neverServe`: files that are a 404 wherever they lie and under whatever name (the cluster
   * key file: anyone who could download it could forge descriptors).
   */
  constructor(root: string, policy: SymlinkPolicy = 'inside', neverServe: readonly string[] = []) {
    this.#root = resolve(root);
    this.#policy = policy;
    this.#neverServe = neverServe;
  }

  /**
   * The regular file `urlPath` names, or undefined: not found, not a regular file, a path that
   * would leave the root, or a link the policy refuses.
   */
  async find(urlPath: string): Promise<StaticFile | undefined> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return undefined;
    }
    if (decoded.includes('\0')) return undefined;
    const path = normalize(join(this.#root, decoded));
    if (!path.startsWith(withSep(this.#root))) return undefined;
    if (this.#policy === 'any') {
      const info = attempt(() => statSync(path));
      if (!info?.isFile()) return undefined;
      return this.#neverServed(info) ? undefined : describe(path, info);
    }
    // Resolved per request, not once: deployments swap a link to the root to publish a release.
    const realRoot = attempt(() => realpathSync.native(this.#root));
    const real = attempt(() => realpathSync.native(path));
    if (!realRoot || !real) return undefined;
    // With `none`, the file's real path is the requested path under the real root: no link.
    const allowed = (candidate: string): boolean =>
      this.#policy === 'none'
        ? candidate === join(realRoot, relative(this.#root, path))
        : candidate.startsWith(withSep(realRoot));
    if (!allowed(real)) return this.#refused();
    // Between the check and the open, a directory on the way may be replaced by a link: so the
    // check is repeated on what was opened, whose path the kernel knows. FilePayload later opens
    // `real` again and serves it only if it is still this file (device, inode, size, mtime).
    const fd = attempt(() =>
      openSync(real, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW),
    );
    if (fd === undefined) return undefined;
    try {
      const info = fstatSync(fd);
      if (!info.isFile()) return undefined;
      const opened = openedPath(fd, real, info);
      if (opened === undefined || !allowed(opened)) return this.#refused();
      return this.#neverServed(info) ? undefined : describe(real, info);
    } finally {
      closeSync(fd);
    }
  }

  #refused(): undefined {
    this.stats.refusedSymlinks++;
    return undefined;
  }

  /** True (and counted) when `file` is one of the never-served files, compared by identity. */
  #neverServed(file: { dev: number; ino: number }): boolean {
    for (const path of this.#neverServe) {
      // Looked up per request: `odb keygen` replaces the key file, with a new inode.
      const info = attempt(() => statSync(path));
      if (info && info.dev === file.dev && info.ino === file.ino) {
        this.stats.refusedNeverServed++;
        return true;
      }
    }
    return false;
  }
}

/** `dir` with one trailing separator (`/` stays `/`): the prefix of every path under it. */
function withSep(dir: string): string {
  return dir.endsWith(sep) ? dir : dir + sep;
}

/**
 * The path of the open file `fd` as the kernel knows it (Linux: /proc/self/fd). Elsewhere, the
 * real path of `path` now, if it still is the opened file; undefined when it is not.
 */
function openedPath(
  fd: number,
  path: string,
  opened: { dev: number; ino: number },
): string | undefined {
  const known = attempt(() => readlinkSync(`/proc/self/fd/${fd}`));
  if (known !== undefined) return known;
  const now = attempt(() => realpathSync.native(path));
  const info = now === undefined ? undefined : attempt(() => statSync(now));
  return info && info.dev === opened.dev && info.ino === opened.ino ? now : undefined;
}

/** What `call` returns, or undefined when it throws (a file system call that found nothing). */
function attempt<T>(call: () => T): T | undefined {
  try {
    return call();
  } catch {
    return undefined;
  }
}

function describe(path: string, info: Stats): StaticFile {
  return {
    path,
    identity: identityOf(info),
    representation: {
      size: info.size,
      etag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}-${info.ino.toString(16)}"`,
      lastModified: info.mtime,
      contentType: contentTypes[extname(path).toLowerCase()] ?? 'application/octet-stream',
    },
  };
}
