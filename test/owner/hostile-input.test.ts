// The owner-side parsers on hostile input: whatever the bytes, a malformed VMSA, OVMF image or
// session blob is the project's SevError (saying what was expected), never a RangeError or
// TypeError from a Buffer read deep inside.
import * as assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { arkPin, beToLe } from '../../lib/certs/index';
import { SevArgumentError, SevError } from '../../lib/errors';
import { OvmfImage, parseSessionBlob, Vmsa } from '../../lib/owner/index';

/** Runs `parse` on random inputs of awkward sizes; returns the names of non-SevError throws. */
function foreignErrors(parse: (b: Buffer) => unknown, sizes: number[], rounds = 600): string[] {
  const seen = new Set<string>();
  for (let i = 0; i < rounds; i++) {
    const b = randomBytes(sizes[i % sizes.length]);
    // Half the time, a plausible OVMF footer: the table GUID and a length just before the end.
    if (i % 2 && b.length >= 50) {
      Buffer.from('96b582de1fb245f7baeaa366c55a082d', 'hex').copy(b, b.length - 48);
      b.writeUInt16LE(48 + (i % 7) * 8, b.length - 50);
    }
    try {
      parse(b);
    } catch (e) {
      if (!(e instanceof SevError)) seen.add(`${(e as Error).constructor.name}: ${(e as Error).message}`);
    }
  }
  return [...seen];
}

describe('owner parsers on hostile input', () => {
  it('Vmsa: wrong sizes, wrong types and unknown register names are argument errors', () => {
    for (const page of [Buffer.alloc(0), Buffer.alloc(4095), Buffer.alloc(4097)]) {
      assert.throws(() => new Vmsa(page), (e: unknown) => e instanceof SevArgumentError && /4096 bytes, got \d+/.test((e as Error).message));
    }
    assert.throws(() => new Vmsa(123 as unknown as Uint8Array), SevArgumentError);
    assert.throws(() => new Vmsa().get('rqx' as never), /unknown VMSA register 'rqx'/);
    assert.throws(() => new Vmsa().set('rqx' as never, 1), SevArgumentError);
    assert.deepEqual(foreignErrors((b) => new Vmsa(b), [0, 1, 4095, 4096, 4097]), []);
  });

  it('OvmfImage.parse: random images and footers give SevErrors only', () => {
    assert.deepEqual(foreignErrors((b) => {
      const o = OvmfImage.parse(b);
      o.sevEsResetAddress?.();
      return o;
    }, [0, 16, 50, 64, 4096, 65536]), []);
  });

  it('parseSessionBlob: random blobs give SevErrors only', () => {
    assert.deepEqual(foreignErrors((b) => parseSessionBlob(b), [0, 1, 15, 16, 64, 0x1000]), []);
  });

  it('helpers refuse bad arguments with the project\'s error', () => {
    assert.throws(() => arkPin('venice' as never), (e: unknown) => e instanceof SevArgumentError && /unknown generation venice/.test((e as Error).message));
    assert.throws(() => beToLe(Buffer.alloc(9, 1), 8), SevArgumentError);
  });
});
