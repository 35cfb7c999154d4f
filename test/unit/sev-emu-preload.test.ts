// sev-emu's LD_PRELOAD: the emulator library first, except sanitizer runtimes, which a sanitizer
// build (npm run test:sanitize) needs in front of everything.
import * as assert from 'node:assert/strict';

import { preloadWith } from '../../lib/cli/sev-emu';

describe('sev-emu: LD_PRELOAD order', () => {
  const lib = '/p/build/Release/sevemu.so';

  it('puts the library before what the caller preloads', () => {
    assert.equal(preloadWith(lib, {}), lib);
    assert.equal(preloadWith(lib, { LD_PRELOAD: '/x/libfoo.so' }), `${lib}:/x/libfoo.so`);
    assert.equal(preloadWith(lib, { LD_PRELOAD: `/x/libfoo.so ${lib}` }), `${lib}:/x/libfoo.so`, 'not twice');
  });

  it('keeps sanitizer runtimes first, from LD_PRELOAD or SEV_EMU_PRELOAD', () => {
    const asan = '/usr/lib/gcc/x86_64-linux-gnu/12/libasan.so';
    assert.equal(preloadWith(lib, { LD_PRELOAD: `/x/libfoo.so:${asan}` }), `${asan}:${lib}:/x/libfoo.so`);
    assert.equal(preloadWith(lib, { SEV_EMU_PRELOAD: asan }), `${asan}:${lib}`);
    assert.equal(preloadWith(lib, { SEV_EMU_PRELOAD: asan, LD_PRELOAD: `${asan}:${lib}` }), `${asan}:${lib}`);
    assert.equal(preloadWith(lib, { LD_PRELOAD: '/usr/lib/x86_64-linux-gnu/libubsan.so.1' }), `/usr/lib/x86_64-linux-gnu/libubsan.so.1:${lib}`);
  });
});
