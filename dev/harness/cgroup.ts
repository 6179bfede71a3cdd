/**
 * A CPU quota for a set of processes (the §3.6.4 experiment: a tier limited to a fraction of a
 * CPU), with whichever cgroup hierarchy the machine has: v2 (`cpu.max`) or v1 (`cpu.cfs_*`).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const v2Root = '/sys/fs/cgroup';
const v1CpuRoot = '/sys/fs/cgroup/cpu';
const periodUs = 100_000;

/** A cgroup holding some processes under a CPU quota. */
export interface CpuQuota {
  readonly path: string;
  /** Moves the processes back to the root group and removes the cgroup. */
  remove(): void;
}

function v2Available(): boolean {
  const controllers = join(v2Root, 'cgroup.controllers');
  return existsSync(controllers) && readFileSync(controllers, 'utf8').split(/\s+/).includes('cpu');
}

/** Limits `pids` (whole processes) to `cpus` CPUs (e.g. 0.5). Needs root. */
export function limitCpu(name: string, pids: readonly number[], cpus: number): CpuQuota {
  const quotaUs = Math.round(cpus * periodUs);
  let root: string;
  let path: string;
  if (v2Available()) {
    root = v2Root;
    path = join(root, name);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'cpu.max'), `${quotaUs} ${periodUs}`);
  } else if (existsSync(join(v1CpuRoot, 'cpu.cfs_quota_us'))) {
    root = v1CpuRoot;
    path = join(root, name);
    mkdirSync(path, { recursive: true });
    writeFileSync(join(path, 'cpu.cfs_period_us'), String(periodUs));
    writeFileSync(join(path, 'cpu.cfs_quota_us'), String(quotaUs));
  } else {
    throw new Error(
      'no cgroup CPU controller found (neither cgroup v2 cpu.max nor v1 cpu.cfs_quota_us)',
    );
  }
  for (const pid of pids) writeFileSync(join(path, 'cgroup.procs'), String(pid));
  return {
    path,
    remove() {
      const members = existsSync(join(path, 'cgroup.procs'))
        ? readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)
        : [];
      for (const pid of members) {
        try {
          writeFileSync(join(root, 'cgroup.procs'), pid);
        } catch {
          // The process exited meanwhile.
        }
      }
      rmdirSync(path);
    },
  };
}
