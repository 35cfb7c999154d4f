// Hostile arguments at the public API: every one is a typed SevError (mostly SevArgumentError)
// thrown before any system call — never a TypeError from deep inside, never a crash.
import * as assert from 'node:assert/strict';

import { verifyChain } from '../../lib/certs';
import { SevArgumentError, SevError } from '../../lib/errors';
import { GuestMemory } from '../../lib/kvm';
import { Policy } from '../../lib/launch';
import { buildSecretPacket, buildSessionBlob, computeMeasurement, macEqual, parseLaunchMeasure, sevKdf } from '../../lib/owner';

const typed = (e: unknown) => e instanceof SevError;

describe('hostile arguments are typed errors', () => {
  it('policy', () => {
    for (const bad of [null, undefined, 'x', [], { noDebug: true, bogus: 1 }, 1.5, -1]) {
      assert.throws(() => Policy.from(bad as never), (e: unknown) => e instanceof SevArgumentError, String(bad));
    }
  });

  it('owner toolkit', () => {
    assert.throws(() => computeMeasurement(null as never), typed);
    assert.throws(() => buildSecretPacket(null as never, Buffer.alloc(32), Buffer.alloc(16)), typed);
    assert.throws(() => buildSecretPacket({ tek: Buffer.alloc(16), tik: Buffer.alloc(16) }, null as never, Buffer.alloc(16)), typed);
    assert.throws(() => buildSessionBlob(null as never, 0), typed);
    assert.throws(() => buildSessionBlob(Buffer.alloc(48), 0, null as never), typed);
    assert.throws(() => parseLaunchMeasure(null as never), typed);
    assert.throws(() => macEqual(null as never, Buffer.alloc(1)), typed);
    assert.throws(() => sevKdf(undefined as never, 'x', Buffer.alloc(0), 16), typed);
    assert.throws(() => verifyChain(null as never), typed);
  });

  it('guest memory beyond the ArrayBuffer limit is refused, not an abort', () => {
    assert.throws(() => GuestMemory.create(2 ** 32 + 4096), (e: Error) => e instanceof SevArgumentError && /split guest RAM/.test(e.message));
    assert.throws(() => GuestMemory.create(2 ** 50), SevArgumentError);
    const m = GuestMemory.create(4096, null);
    m.release();
  });
});
