import * as assert from 'node:assert/strict';

import { SevArgumentError } from '../../lib/errors';
import { Policy } from '../../lib/launch/policy';

describe('launch policy', () => {
  it('maps named flags to the spec bits and back', () => {
    const p = Policy.from({ noDebug: true, noKeySharing: true, es: true, apiMajor: 1, apiMinor: 49 });
    assert.equal(p.value, 0x31010007);
    assert.deepEqual(p.toFlags(), { noDebug: true, noKeySharing: true, es: true, noSend: false, domain: false, sev: false, apiMajor: 1, apiMinor: 49 });
    assert.equal(Policy.from({ noSend: true, domain: true, sev: true }).value, 0x38);
    assert.match(Policy.from(5).toString(), /NODBG \| ES/);
  });

  it('rejects reserved bits and out-of-range values', () => {
    assert.throws(() => Policy.from(0x40), SevArgumentError);
    assert.throws(() => Policy.from(-1), SevArgumentError);
    assert.throws(() => Policy.from(2 ** 32), SevArgumentError);
    assert.throws(() => Policy.from({ apiMajor: 256 }), SevArgumentError);
  });
});
