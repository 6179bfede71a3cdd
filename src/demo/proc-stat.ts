/** Per-process CPU time from the kernel's accounting (/proc/<pid>/stat), all threads included. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

function clockTicks(): number {
  ticksPerSecond ??=
    Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticksPerSecond;
}

/** User + system CPU time of `pid` so far, in µs (resolution: one clock tick, usually 10 ms). */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1e6) / clockTicks();
}

/** A `kB` field of /proc/<pid>/status, in bytes (0 when absent). */
function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return Number(kib ?? 0) * 1024;
}

/** Peak resident set size of `pid` (VmHWM), in bytes. */
export function peakRssBytes(pid: number): number {
  return statusBytes(pid, 'VmHWM');
}

/** Resident set size of `pid` now (VmRSS), in bytes. */
export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/** CPU µs of every process of a tier. */
export function tierCpuMicros(tier: { pids(): number[] }): number {
  return tier.pids().reduce((sum, pid) => sum + cpuMicros(pid), 0);
}
