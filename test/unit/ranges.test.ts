import * as assert from 'node:assert/strict';

import { SevArgumentError } from '../../lib/errors';
import { planChunks, validateRanges } from '../../lib/launch/ranges';

describe('launch ranges', () => {
  it('merges only ranges that continue each other, keeping order', () => {
    const plan = planChunks([{ offset: 0, length: 4096 }, { offset: 4096, length: 4096 }, { offset: 0x10000, length: 32 }, { offset: 0x2000, length: 16 }], 1 << 20);
    assert.deepEqual(plan, [{ offset: 0, length: 8192 }, { offset: 0x10000, length: 32 }, { offset: 0x2000, length: 16 }]);
  });

  it('splits long runs to the chunk size', () => {
    assert.deepEqual(planChunks([{ offset: 0, length: 10 * 16 }], 64), [
      { offset: 0, length: 64 }, { offset: 64, length: 64 }, { offset: 128, length: 32 },
    ]);
  });

  it('rejects unaligned, empty, negative and out-of-bounds ranges with a message', () => {
    const bad = [
      [{ offset: 8, length: 16 }, /multiples of 16/],
      [{ offset: 0, length: 0 }, /length > 0/],
      [{ offset: -16, length: 16 }, /≥ 0/],
      [{ offset: 4096, length: 16 }, /outside guest memory/],
      [{ offset: 0.5, length: 16 }, /integers/],
    ] as const;
    for (const [r, msg] of bad) {
      assert.throws(() => validateRanges('LAUNCH_UPDATE_DATA', [r], 4096), (e: Error) => e instanceof SevArgumentError && msg.test(e.message));
    }
    assert.throws(() => validateRanges('LAUNCH_UPDATE_DATA', [], 4096), SevArgumentError);
    assert.throws(() => planChunks([{ offset: 0, length: 16 }], 10), SevArgumentError);
  });
});
