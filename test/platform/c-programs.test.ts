// The emulator's own C conformance programs (test/c), each on a fresh emulator state, so that any
// dynamically linked client — not just node — is shown to work unchanged under `sev-emu run`.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { deviceRequired, emulated, haveCompiler, hostFacts, ROOT, skipBecause, underFreshEmulator } from '../helpers/env';

function compile(dir: string, name: string, extra: string[] = []): string {
  const out = path.join(dir, name);
  execFileSync('cc', ['-std=c99', '-D_DEFAULT_SOURCE', '-O1', '-o', out, path.join(ROOT, 'test', 'c', `${name}.c`), ...extra]);
  return out;
}

describe('emulator: C conformance programs', function () {
  let dir: string;

  before(function () {
    if (!emulated) skipBecause(this, 'the C conformance programs reset and fuzz the platform: emulator only');
    if (!haveCompiler()) {
      if (deviceRequired) throw new Error('a C compiler (cc) is needed for the C conformance programs');
      this.skip();
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-cprog-'));
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  it('sev_owner_test: ownership flows and the state machine (system libcrypto in the same process)', function () {
    if (!fs.existsSync('/usr/include/openssl/evp.h')) {
      if (deviceRequired) throw new Error('OpenSSL headers (libssl-dev) are needed');
      this.skip();
    }
    const bin = compile(dir, 'sev_owner_test', ['-lcrypto']);
    // SNP: none on Naples; on Milan the host enables it or not (sev-emu run --host-snp).
    for (const [options, mode] of [[['--generation', 'naples'], 'none'], [['--generation', 'milan'], 'off'],
      [['--generation', 'milan', '--host-snp'], 'on']] as const) {
      const r = underFreshEmulator([...options], [bin], { SNP_MODE: mode });
      assert.equal(r.status, 0, `${options.join(' ')}: ${r.stdout}\n${r.stderr}`);
    }
  });

  it('kvm_sev_client: a C VMM launches SEV and SEV-ES guests through KVM, runs them, fuzzes the ioctls', function () {
    // On the host's /dev/kvm where there is one, else on the emulator's software KVM. Its irq
    // checks depend on the host's KVM module, which the program cannot learn inside the emulator
    // from CPUID or /proc/cpuinfo (the emulated EPYC's): sev-emu info, run outside, names it.
    const bin = compile(dir, 'kvm_sev_client', ['-lcrypto', '-ldl']);
    const r = underFreshEmulator([], [bin, 'all'], { SEV_TEST_HOST_KVM: hostFacts().hostKvmModule ?? '' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok(!/^not ok/m.test(r.stdout), r.stdout);
    assert.ok((r.stdout.match(/^ok /gm) ?? []).length > 50, r.stdout);
  });

  it('snp_launch_client: a C VMM launches an SNP guest through guest_memfd and proves its own digest with an ID block', function () {
    if (!fs.existsSync('/usr/include/openssl/evp.h')) {
      if (deviceRequired) throw new Error('OpenSSL headers (libssl-dev) are needed');
      this.skip();
    }
    // The system's kernel headers plus the project's UAPI header (test/c/conformance/new_uapi.h)
    // only: an independent client. SNP VMs are the software KVM's, on a host with SNP enabled.
    const bin = compile(dir, 'snp_launch_client', ['-lcrypto']);
    const r = underFreshEmulator(['--host-snp', '--kvm', 'soft'], [bin]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.ok(!/^not ok/m.test(r.stdout), r.stdout);
    for (const line of [
      /^ok - A: NORMAL gfn 0xfe x4 over the private\/shared edge -> partial/m,
      /^ok - A: the rewritten CPUID page is accepted/m,
      /^ok - A: FINISH with an ID block of the pages' digest -> EIO, BAD_MEASUREMENT/m,
      /^ok - B: FINISH with a signed ID block \(and author key\) of the digest computed here/m,
      /^ok - C: the guest runs/m,
      /^ok - SNP_PLATFORM_STATUS guest_count back to 0/m,
    ]) assert.match(r.stdout, line);
    assert.ok((r.stdout.match(/^ok /gm) ?? []).length >= 50, r.stdout);
  });

  it('kvm_fuzz: random ioctls, memslots, registers and guest code end as the kernel ends them', function () {
    this.timeout(300_000); // ~25 s on an idle 2-core machine; the SEV rounds make firmware calls
    const bin = compile(dir, 'kvm_fuzz');
    for (const seed of ['1', '0x5eed']) {
      const r = underFreshEmulator([], [bin, seed, '300']);
      assert.equal(r.status, 0, `seed ${seed}: ${r.stdout}\n${r.stderr}`);
      assert.ok(!/^not ok/m.test(r.stdout), r.stdout);
      assert.match(r.stdout, /^ok - \d{4,} calls/m);
    }
  });

  it('sev_stress: threads × processes with fuzzed commands, no crash, state intact', () => {
    const bin = compile(dir, 'sev_stress', ['-pthread']);
    const r = underFreshEmulator([], [bin, '4', '150', '3']);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  });
});
