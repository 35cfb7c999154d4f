// The probe's logic on a scripted host: which checks pass, fail or skip, and the fixes offered.
import * as assert from 'node:assert/strict';

import { constants as osConstants } from 'node:os';

import { probe, realHost, type ProbeHost } from '../../lib/platform/probe';

function host(over: Partial<{ eax: number; params: Record<string, string>; cmdline: string; flags: string; dev: number; emulated: string | null }> = {}): ProbeHost {
  const eax = over.eax ?? 0b11111; // SME SEV PFLUSH ES SNP
  const regs: Record<number, [number, number, number, number]> = {
    0: [0x10, 0x68747541, 0x444d4163, 0x69746e65], // "AuthenticAMD"
    0x80000000: [0x80000021, 0, 0, 0],
    0x8000001f: [eax, 51 | (1 << 6), 509, 100],
  };
  const brand = Buffer.alloc(48);
  brand.write('AMD EPYC 7763 64-Core Processor');
  for (let i = 0; i < 3; i++) {
    regs[0x80000002 + i] = [0, 1, 2, 3].map((j) => brand.readUInt32LE(i * 16 + j * 4)) as [number, number, number, number];
  }
  const params = over.params ?? { sev: 'Y', sev_es: 'Y', sev_snp: 'N' };
  return {
    cpuid: (leaf) => regs[leaf] ?? [0, 0, 0, 0],
    readText: (p) => {
      if (p === '/proc/cpuinfo') return `processor\t: 0\nflags\t\t: fpu ${over.flags ?? 'sme sev sev_es'}\n`;
      if (p === '/proc/cmdline') return over.cmdline ?? 'ro mem_encrypt=on kvm_amd.sev=1';
      const m = p.match(/kvm_amd\/parameters\/(\w+)$/);
      return m && params[m[1]] !== undefined ? params[m[1]] + '\n' : null;
    },
    tryOpen: () => over.dev ?? 0,
    emulated: () => over.emulated ?? null,
  };
}

describe('probe (sev ok) logic', () => {
  it('an SEV-ES host passes sev and es, and fails snp on the kvm_amd parameter', async () => {
    const h = host();
    const sev = await probe('sev', { ...h, tryOpen: (p) => (p.includes('sev') ? -2 : 0) });
    // /dev/sev missing: fails with a fix naming the modules
    const dev = sev.checks.find((c) => c.id === 'dev-sev-read')!;
    assert.equal(dev.state, 'FAIL');
    assert.match(dev.fix!, /ccp and kvm_amd/);
    assert.equal(sev.ok, false);
    const snp = await probe('snp', { ...h, tryOpen: () => -2 });
    const param = snp.checks.find((c) => c.id === 'kvm-sev-snp')!;
    assert.equal(param.state, 'FAIL');
    assert.match(param.fix!, /kvm_amd.sev_snp=1/);
  });

  it('only reports checks relevant to the level', async () => {
    const r = await probe('sev', { ...host(), tryOpen: () => -2 });
    assert.ok(r.checks.every((c) => c.level === 'sev'));
    assert.ok(!r.checks.some((c) => c.id === 'cpuid-sev-es'));
  });

  it('CPUID without SEV fails with the BIOS fix and skips the SEV details', async () => {
    const r = await probe('sev', { ...host({ eax: 0 }), tryOpen: () => -2 });
    const sevBit = r.checks.find((c) => c.id === 'cpuid-sev')!;
    assert.equal(sevBit.state, 'FAIL');
    assert.match(sevBit.fix!, /BIOS/);
    assert.equal(r.checks.find((c) => c.id === 'c-bit')!.state, 'SKIP');
  });

  it('C-bit and ASID counts come from CPUID EBX/ECX/EDX', async () => {
    const r = await probe('sev', { ...host(), tryOpen: () => -2 });
    assert.equal(r.checks.find((c) => c.id === 'c-bit')!.detail, '51');
    assert.equal(r.checks.find((c) => c.id === 'phys-reduction')!.detail, '1');
    assert.equal(r.checks.find((c) => c.id === 'asids')!.detail, '509');
  });

  it('kvm_amd parameters read Y or 1 as enabled', async () => {
    const r = await probe('es', { ...host({ params: { sev: '1', sev_es: 'N' } }), tryOpen: () => -2 });
    assert.equal(r.checks.find((c) => c.id === 'kvm-sev')!.state, 'PASS');
    assert.equal(r.checks.find((c) => c.id === 'kvm-sev-es')!.state, 'FAIL');
  });

  it('under the emulator, /proc/cpuinfo (the emulated EPYC\'s) is checked like a real one', async () => {
    const r = await probe('es', { ...host({ flags: 'sme sev sev_es', cmdline: '', emulated: 'milan' }), tryOpen: () => -2 });
    assert.equal(r.emulated, 'milan');
    for (const id of ['cpuinfo-sme', 'cpuinfo-sev', 'cpuinfo-sev_es']) {
      const c = r.checks.find((x) => x.id === id)!;
      assert.equal(c.state, 'PASS', id);
      assert.match(c.detail!, /emulated milan/);
    }
    const missing = await probe('es', { ...host({ flags: 'sme sev', emulated: 'rome' }), tryOpen: () => -2 });
    assert.equal(missing.checks.find((c) => c.id === 'cpuinfo-sev_es')!.state, 'FAIL');
  });

  it('under the emulator, memory encryption is active when the emulated /proc/cpuinfo lists sme, whatever the real cmdline says', async () => {
    // The real kernel's command line (here: none, then mem_encrypt=off) does not describe the emulated host.
    for (const cmdline of ['', 'ro mem_encrypt=off']) {
      const r = await probe('sev', { ...host({ flags: 'sme sev', cmdline, emulated: 'genoa' }), tryOpen: () => -2 });
      const c = r.checks.find((x) => x.id === 'sme-active')!;
      assert.equal(c.state, 'PASS');
      assert.match(c.detail!, /emulated platform: memory encryption active/);
    }
    const off = await probe('sev', { ...host({ flags: 'sev', cmdline: 'mem_encrypt=on', emulated: 'genoa' }), tryOpen: () => -2 });
    assert.equal(off.checks.find((x) => x.id === 'sme-active')!.state, 'FAIL');
    const unreadable = await probe('sev', { ...host({ emulated: 'genoa' }), readText: () => null, tryOpen: () => -2 });
    assert.equal(unreadable.checks.find((x) => x.id === 'sme-active')!.state, 'SKIP');
    assert.equal(unreadable.checks.find((x) => x.id === 'cpuinfo-sev')!.state, 'SKIP');
  });

  it('on a real host, memory encryption follows mem_encrypt= on the command line', async () => {
    const on = await probe('sev', { ...host({ flags: 'sme sev', cmdline: 'ro mem_encrypt=on' }), tryOpen: () => -2 });
    assert.equal(on.checks.find((x) => x.id === 'sme-active')!.detail, 'mem_encrypt=on');
    assert.equal(on.checks.find((x) => x.id === 'sme-active')!.state, 'PASS');
    const none = await probe('sev', { ...host({ flags: 'fpu', cmdline: 'ro' }), tryOpen: () => -2 });
    assert.equal(none.checks.find((x) => x.id === 'sme-active')!.state, 'FAIL');
  });

  it('the real host reports open failures as negative errnos', () => {
    assert.equal(realHost.tryOpen('/nonexistent/sev-device', 0), -osConstants.errno.ENOENT);
    assert.equal(realHost.tryOpen('/proc/self/status', 0), 0);
  });
});
