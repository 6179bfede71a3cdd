/**
 * Child processes inherit NODE_OPTIONS, and with it stream mode and its settings. A fixed
 * `ODB_STORE_LISTEN` port is then already taken, by the parent's store: the child's store must
 * listen elsewhere instead of stopping the child (a test runner's forked worker, a cluster
 * worker, a build step). Only a port held by an ancestor of this process counts as inherited: a
 * port taken by an unrelated process, or by an ancestor that was not given the same setting
 * (say, a test harness holding the port), stays the start-up error it is.
 *
 * Linux: the listening sockets come from /proc/net/tcp{,6}, their holders from /proc/PID/fd.
 * Elsewhere (no /proc) nothing is found and the start-up error stands.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Socket inodes listening on `port` (TCP over IPv4 or IPv6). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEX_IP:HEX_PORT; state 0A is LISTEN; field 9 is the inode.
      const local = fields[1];
      if (!local || fields[3] !== '0A') continue;
      if (Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) {
        inodes.add(fields[9]!);
      }
    }
  }
  return inodes;
}

/** The parent of `pid`, or undefined at the root or when it cannot be read. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return ppid > 1 ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function holdsAny(pid: number, inodes: ReadonlySet<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return true;
    } catch {
      // The descriptor closed while we looked.
    }
  }
  return false;
}

/** True when `pid` was started with any of `entries` (`NAME=value`) in its environment. */
function startedWith(pid: number, entries: readonly string[]): boolean {
  try {
    const environment = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return entries.some((entry) => environment.includes(entry));
  } catch {
    return false;
  }
}

/**
 * True when a process this one descends from listens on `port` and was started with any of
 * `settings` (`NAME=value`, the settings that gave this process the port): the port is the
 * store of a stream-mode ancestor whose settings this process inherited.
 */
export function portHeldByAncestor(port: number, settings: readonly string[]): boolean {
  const inodes = listeningInodes(port);
  if (inodes.size === 0 || settings.length === 0) return false;
  for (let pid = parentOf(process.pid), depth = 0; pid && depth < 64; depth++) {
    if (holdsAny(pid, inodes) && startedWith(pid, settings)) return true;
    pid = parentOf(pid);
  }
  return false;
}
