/** Locating a file under a served directory, and the facts its responses need. */
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { identityOf, type FileIdentity } from '../rab/file-payload.js';
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

/** A regular file found under the root. */
export interface StaticFile {
  readonly path: string;
  readonly identity: FileIdentity;
  readonly representation: Representation;
}

/**
 * The regular file a URL path names under `root`, or undefined (not found, not a regular file,
 * or a path that would leave the root).
 */
export async function findStaticFile(
  root: string,
  urlPath: string,
): Promise<StaticFile | undefined> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const base = resolve(root) + sep;
  const path = normalize(join(base, decoded));
  if (!path.startsWith(base)) return undefined;
  const info = await stat(path).catch(() => undefined);
  if (!info?.isFile()) return undefined;
  const identity = identityOf(info);
  return {
    path,
    identity,
    representation: {
      size: info.size,
      etag: `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}-${info.ino.toString(16)}"`,
      lastModified: info.mtime,
      contentType: contentTypes[extname(path).toLowerCase()] ?? 'application/octet-stream',
    },
  };
}
