// The software KVM's x86 instruction decoder (native/emu/softkvm/x86_decode.cc) against Unicorn
// itself: test/c/x86_decode_test.cc runs a large corpus of byte sequences through both, in 16-,
// 32- and 64-bit code, and fails on any length mismatch or unexplained difference (see that file).
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { deviceRequired, haveCompiler, ROOT, skipBecause } from '../helpers/env';

const UNICORN_H = '/usr/include/unicorn/unicorn.h';

/** The installed Unicorn API version from its header ([major, minor]), or null without headers. */
function unicornVersion(): [number, number] | null {
  let text: string;
  try {
    text = fs.readFileSync(UNICORN_H, 'utf8');
  } catch {
    return null;
  }
  const major = /#define\s+UC_API_MAJOR\s+(\d+)/.exec(text);
  const minor = /#define\s+UC_API_MINOR\s+(\d+)/.exec(text);
  return major && minor ? [Number(major[1]), Number(minor[1])] : [0, 0];
}

function haveCxx(): boolean {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The environment for the compiler and the test program: they need no SEV emulator. */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  return env;
}

describe('software KVM: x86 instruction decoder against Unicorn', function () {
  // Some 2.2 million single-instruction runs of Unicorn: about a minute.
  this.timeout(15 * 60_000);
  let dir: string | undefined;
  let bin: string;

  before(function () {
    const version = unicornVersion();
    let missing: string | null = null;
    if (!version) missing = `libunicorn-dev (Unicorn >= 2.1 headers, ${UNICORN_H}) is not installed`;
    else if (version[0] < 2 || (version[0] === 2 && version[1] < 1))
      missing = `libunicorn-dev is ${version.join('.')}; Unicorn >= 2.1 is needed`;
    else if (!haveCompiler() || !haveCxx()) missing = 'a C++ compiler (g++) is not installed';
    if (missing) {
      const why = `${missing} (scripts/install-unicorn.sh installs libunicorn-dev)`;
      if (deviceRequired) throw new Error(why);
      skipBecause(this, why);
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-x86dec-'));
    bin = path.join(dir, 'x86_decode_test');
    execFileSync(
      'g++',
      [
        '-std=c++17', '-O1', '-o', bin,
        path.join(ROOT, 'test', 'c', 'x86_decode_test.cc'),
        path.join(ROOT, 'native', 'emu', 'softkvm', 'x86_decode.cc'),
        `-I${path.join(ROOT, 'native')}`,
        '-lunicorn',
      ],
      { env: plainEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('decodes every instruction Unicorn decodes to the same length; every other difference is a known one', function () {
    const r = spawnSync(bin, [], { encoding: 'utf8', env: plainEnv(), timeout: 14 * 60_000, maxBuffer: 64 << 20 });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, out);
    assert.ok(!/^not ok/m.test(r.stdout), out);
    // The vectors, then per mode (16, 32, 64-bit): the corpus against Unicorn, and truncation.
    const oks = (r.stdout.match(/^ok \d+ /gm) ?? []).length;
    assert.equal(oks, 7, out);
    assert.match(r.stdout, /^1\.\.7$/m, out);
    const speed = /^# speed: .*$/m.exec(r.stdout);
    if (speed) console.log(`      ${speed[0].slice(2)}`);
  });
});
