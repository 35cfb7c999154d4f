// How much memory this process may pin: the kernel charges SEV pinning (registered regions and
// each LAUNCH_UPDATE_DATA's pages) to RLIMIT_MEMLOCK unless the process has CAP_IPC_LOCK.
import * as fs from 'node:fs';

const CAP_IPC_LOCK = 14;

export interface MemlockInfo {
  /** RLIMIT_MEMLOCK soft limit in bytes; Infinity when unlimited. */
  limit: number;
  /** True when CAP_IPC_LOCK is effective: the limit does not apply. */
  capIpcLock: boolean;
}

export function memlockInfo(): MemlockInfo {
  let limit = Infinity;
  let capIpcLock = false;
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max locked memory'));
    const soft = line?.slice('Max locked memory'.length).trim().split(/\s+/)[0];
    if (soft && soft !== 'unlimited') limit = Number(soft);
  } catch {
    /* not Linux /proc: assume no limit; the kernel will say otherwise */
  }
  try {
    const cap = fs.readFileSync('/proc/self/status', 'utf8').match(/^CapEff:\s*([0-9a-f]+)/m)?.[1];
    if (cap) capIpcLock = ((BigInt(`0x${cap}`) >> BigInt(CAP_IPC_LOCK)) & 1n) === 1n;
  } catch {
    /* keep false */
  }
  return { limit, capIpcLock };
}

/** Bytes this process may still pin, given what it already has pinned for SEV. */
export function pinnableBytes(info: MemlockInfo, alreadyPinned: number): number {
  if (info.capIpcLock || info.limit === Infinity) return Infinity;
  return Math.max(0, info.limit - alreadyPinned);
}
