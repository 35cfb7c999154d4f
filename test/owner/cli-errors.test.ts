// Bad input through the CLI: clear messages, exit 1 for bad values (SevArgumentError), exit 2
// for usage mistakes, and a JSON error document with --json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { OVMF, requireSevctlFixtures, sev } from './fixtures';

const BASE = ['--api-major', '1', '--api-minor', '40', '--build-id', '40', '--policy', '3', '--nonce', 'wxP6tRHCFrFQWxsuqZA8QA=='];
const TIK = ['--tik', 'measurement/tik1.bin'];
const SECRET = ['--tik', 'secret/tik1.bin', '--tek', 'secret/tek1.bin',
  '--launch-measure-blob', 'TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS'];

describe('sev CLI: owner commands reject bad input', function () {
  let tmp: string;
  before(function () {
    requireSevctlFixtures(this);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-owner-err-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const fails = (args: string[], status: number, message: RegExp) => {
    const r = sev(args);
    assert.equal(r.status, status, `${args.join(' ')}\n${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stdout, '');
  };

  it('verify with a chain file that is missing or a directory: one line naming the file', () => {
    fails(['verify', '--sev', path.join(tmp, 'no-such-chain')], 1, /^error: verify: --sev: cannot read .*no-such-chain: no such file or directory \(ENOENT\)$/m);
    fails(['verify', '--sev', tmp], 1, /--sev: .* is a directory, not a regular file/);
  });
  it('a kernel that is not a regular file (/dev/zero) is refused before anything is read', () =>
    fails(['measurement', 'build', ...BASE, ...TIK, '--firmware', OVMF, '--kernel', '/dev/zero', '--initrd', '/dev/null'], 1, /--kernel: \/dev\/zero is a character device, not a regular file/));
  it('a missing firmware file', () => fails(['measurement', 'build', ...BASE, ...TIK, '--firmware', 'nope.fd'], 1, /^error: measurement: --firmware: cannot read nope\.fd: no such file or directory \(ENOENT\)/));
  it('more vCPUs than KVM allows (4096), refused before any VMSA is built', () =>
    fails(['measurement', 'build', ...BASE, ...TIK, '--firmware', OVMF, '--num-cpus', '1000000', '--cpu-type', 'EPYC-v4', '--policy', '0x5'], 1, /vCPU count must be an integer from 1 to 4096 \(KVM's limit\), got 1000000/));
  it('a TIK of the wrong size', () => fails(['measurement', 'build', ...BASE, '--tik', 'AAAA', '--firmware', OVMF], 1, /--tik must be 16 bytes, the base64 value has 3/));
  it('a TIK that is neither file nor base64', () => fails(['measurement', 'build', ...BASE, '--tik', 'no/such/tik.bin', '--firmware', OVMF], 1, /--tik: 'no\/such\/tik.bin' is neither an existing file nor valid base64/));
  it('bad base64 for --launch-digest', () => fails(['measurement', 'build', ...BASE, ...TIK, '--launch-digest', 'not base64!'], 1, /--launch-digest: 'not base64!' is not valid base64/));
  it('a bad number', () => fails(['measurement', 'build', ...BASE.slice(0, 6), '--policy', '0xZZ', ...BASE.slice(8), ...TIK, '--firmware', OVMF], 1, /--policy=0xZZ: value must be a decimal or 0x-hex integer/));
  it('an API version above 255', () => fails(['measurement', 'build', '--api-major', '256', ...BASE.slice(2), ...TIK, '--firmware', OVMF], 1, /--api-major=256: value must be at most 255/));
  it('a missing required flag is a usage error', () => fails(['measurement', 'build', ...BASE, '--firmware', OVMF], 2, /--tik is required/));
  it('no nonce is a usage error', () => fails(['measurement', 'build', ...BASE.slice(0, 8), ...TIK, '--firmware', OVMF], 2, /one of --nonce or --launch-measure-blob/));
  it('SEV-ES without vCPU information', () => fails(['measurement', 'build', ...BASE.slice(0, 6), '--policy', '5', ...BASE.slice(8), ...TIK, '--firmware', OVMF], 1, /SEV-ES bit/));
  it('only one VMSA file', () => fails(['measurement', 'build', ...BASE, ...TIK, '--firmware', OVMF, '--num-cpus', '2', '--vmsa-cpu0', 'vmsa0.bin'], 2, /must be specified together/));
  it('an unknown verb', () => fails(['measurement', 'compute'], 2, /expected 'build' or 'verify'/));
  it('an unknown flag', () => fails(['measurement', 'build', '--frimware', 'x'], 2, /Unknown option '--frimware'/));
  it('verify with a mismatching measurement exits 1', () => {
    const r = sev(['measurement', 'verify', ...BASE, ...TIK, '--firmware', OVMF, '--measurement', Buffer.alloc(32).toString('base64')]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /^MISMATCH/);
  });
  it('verify with a 32-byte measurement but no nonce', () => fails(['measurement', 'verify', ...BASE.slice(0, 8), ...TIK, '--firmware', OVMF, '--measurement', Buffer.alloc(32).toString('base64')], 2, /needs --nonce/));

  it('a malformed secret GUID', () => fails(['secret', 'build', ...SECRET, '--secret', '736869e5-84f0-4973-92ec:secret/secret1.txt', path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /is not a GUID/));
  it('the same secret GUID twice (OVMF would only ever read the first)', () => {
    const g = '736869e5-84f0-4973-92ec-06879ce3da0b';
    fails(['secret', 'build', ...SECRET, '--secret', `${g}:secret/secret1.txt`, '--secret', `${g.toUpperCase()}:secret/secret1.txt`, path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /appears twice/);
    assert.ok(!fs.existsSync(path.join(tmp, 'h')) && !fs.existsSync(path.join(tmp, 'p')), 'no output written');
  });
  it('a secret without a colon', () => fails(['secret', 'build', ...SECRET, '--secret', 'secret/secret1.txt', path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /expected GUID:PATH/));
  it('a missing secret file', () => fails(['secret', 'build', ...SECRET, '--secret', '736869e5-84f0-4973-92ec-06879ce3da0b:secret/none.txt', path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /cannot read secret\/none.txt: no such file or directory \(ENOENT\)/));
  it('a short IV', () => fails(['secret', 'build', ...SECRET, '--iv', 'AAAAAAAA', '--secret', '736869e5-84f0-4973-92ec-06879ce3da0b:secret/secret1.txt', path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /--iv must be 16 bytes/));
  it('a TEK of the wrong size', () => fails(['secret', 'build', ...SECRET, '--tek', Buffer.alloc(32).toString('base64'), '--secret', '736869e5-84f0-4973-92ec-06879ce3da0b:secret/secret1.txt', path.join(tmp, 'h'), path.join(tmp, 'p')], 1, /--tek must be 16 bytes/));
  it('no output files', () => fails(['secret', 'build', ...SECRET, '--secret', '736869e5-84f0-4973-92ec-06879ce3da0b:secret/secret1.txt'], 2, /HEADER-FILE and PAYLOAD-FILE are required/));

  it('vmsa show of a file that is not 4096 bytes', () => fails(['vmsa', 'show', 'secret/secret1.txt'], 1, /expected VMSA length 4096/));
  it('vmsa build without --userspace', () => fails(['vmsa', 'build', path.join(tmp, 'v'), '--cpu', '0'], 2, /--userspace qemu\|krun is required/));
  it('vmsa build of an AP for QEMU without --firmware (its reset address is OVMF\'s)', () =>
    fails(['vmsa', 'build', path.join(tmp, 'v'), '--cpu', '1', '--userspace', 'qemu'], 2, /--cpu 1 is an AP.*give --firmware/));
  it('vmsa build with an unknown userspace', () => fails(['vmsa', 'build', path.join(tmp, 'v'), '--cpu', '0', '--userspace', 'xen'], 2, /must be qemu or krun/));
  it('vmsa build for an AP with a firmware lacking the SEV-ES reset block', () => {
    const fw = path.join(tmp, 'plain.fd');
    fs.writeFileSync(fw, Buffer.alloc(4096));
    fails(['vmsa', 'build', path.join(tmp, 'v'), '--cpu', '1', '--userspace', 'qemu', '--firmware', fw], 1, /no SEV-ES reset block/);
  });

  it('--json reports the typed error', () => {
    const r = sev(['--json', 'measurement', 'build', ...BASE, '--tik', 'AAAA', '--firmware', OVMF]);
    assert.equal(r.status, 1);
    const j = JSON.parse(r.stdout);
    assert.equal(j.error.name, 'SevArgumentError');
    assert.equal(j.error.code, 'ERR_SEV_ARGUMENT');
    assert.equal(j.error.command, 'measurement');
  });

  it('every owner command has --help', () => {
    for (const c of ['measurement', 'secret', 'vmsa']) {
      const r = sev([c, '--help']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, new RegExp(`^Usage: sev ${c}`));
    }
  });
});
