//! Server-side resource figures from /proc: CPU time (utime + stime) and peak RSS of a process.

import { readdirSync, readFileSync } from "node:fs";

/** Linux reports CPU time in clock ticks; 100 per second on every mainstream kernel config. */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) `pid` has used so far, its threads included. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const [utime, stime] = [Number(fields[11]), Number(fields[12])];
  return (utime + stime) / TICKS_PER_SECOND;
}

/** CPU seconds (user + system) of `pid`'s main thread alone: a Node process's event loop. */
export function mainThreadCpuSeconds(pid: number): number {
  const fields = statFields(`${pid}/task/${pid}`);
  return fields === undefined ? NaN : (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** `pid`'s stat fields after the command name (field 3 onwards: index 0 is the state). */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined; // gone meanwhile
  }
}

/**
 * CPU seconds of `root` and every process below it (PostgreSQL: the postmaster and its backends),
 * the children they have reaped included, so a backend that exits mid-window is not lost.
 */
export function treeCpuSeconds(root: number): number {
  const children = new Map<number, number[]>();
  const own = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(entry);
    if (fields === undefined) continue;
    const pid = Number(entry);
    const ppid = Number(fields[1]);
    // utime, stime, cutime, cstime
    own.set(pid, (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / TICKS_PER_SECOND);
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    total += own.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** Peak resident set size of `pid` so far, in bytes (VmHWM). */
export function peakRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Current resident memory of `pid`, in bytes: in all (VmRSS), anonymous (heap, stacks: where a
 * leak shows) and file-backed (mapped files such as SQLite's memory map, which grows with the
 * database and is given back under pressure).
 */
export function residentBytes(pid: number): { total: number; anonymous: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { total: field("VmRSS"), anonymous: field("RssAnon"), file: field("RssFile") };
}
