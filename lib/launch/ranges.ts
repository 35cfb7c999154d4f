// Planning LAUNCH_UPDATE_DATA calls: validate guest-memory ranges against the firmware's rules
// and turn them into few, large, ordered chunks. Order is preserved — the launch digest is a hash
// over the data in the order it was measured — so only ranges that continue exactly where the
// previous one ended are merged; then runs are split to a maximum chunk (memlock, progress).
import { SevArgumentError } from '../errors';

/** LAUNCH_UPDATE_DATA addresses and lengths must be 16-byte aligned (SEV API spec). */
export const UPDATE_ALIGNMENT = 16;

export interface Range {
  offset: number;
  length: number;
}

export function validateRanges(command: string, ranges: readonly Range[], memorySize: number): void {
  if (!Array.isArray(ranges) || ranges.length === 0) {
    throw new SevArgumentError(command, 'expected a non-empty list of { offset, length } ranges');
  }
  ranges.forEach((r, i) => {
    const where = ranges.length > 1 ? ` (range ${i})` : '';
    if (!r || !Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length)) {
      throw new SevArgumentError(command, `offset and length must be integers${where}`);
    }
    if (r.offset < 0 || r.length <= 0) {
      throw new SevArgumentError(command, `offset must be ≥ 0 and length > 0${where}, got offset ${r.offset} length ${r.length}`);
    }
    if (r.offset % UPDATE_ALIGNMENT || r.length % UPDATE_ALIGNMENT) {
      throw new SevArgumentError(
        command,
        `offset and length must be multiples of ${UPDATE_ALIGNMENT}${where}, got offset 0x${r.offset.toString(16)} length 0x${r.length.toString(16)}`,
      );
    }
    if (r.offset + r.length > memorySize) {
      throw new SevArgumentError(
        command,
        `range 0x${r.offset.toString(16)}+0x${r.length.toString(16)} is outside guest memory (0x${memorySize.toString(16)} bytes)${where}`,
      );
    }
  });
}

/** Merges ranges that continue each other (in the given order) and splits runs to `maxChunk`. */
export function planChunks(ranges: readonly Range[], maxChunk: number): Range[] {
  if (!Number.isSafeInteger(maxChunk) || maxChunk < UPDATE_ALIGNMENT || maxChunk % UPDATE_ALIGNMENT) {
    throw new SevArgumentError('planChunks', `chunk size must be a positive multiple of ${UPDATE_ALIGNMENT}`);
  }
  const runs: Range[] = [];
  for (const r of ranges) {
    const last = runs[runs.length - 1];
    if (last && last.offset + last.length === r.offset) last.length += r.length;
    else runs.push({ offset: r.offset, length: r.length });
  }
  const chunks: Range[] = [];
  for (const run of runs) {
    for (let off = run.offset; off < run.offset + run.length; off += maxChunk) {
      chunks.push({ offset: off, length: Math.min(maxChunk, run.offset + run.length - off) });
    }
  }
  return chunks;
}
