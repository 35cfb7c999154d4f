// The SEV-SNP launch on the software machine: a QEMU-style VMM (snp-vmm.ts) launches OVMF through
// guest_memfd and KVM_SEV_SNP_LAUNCH_*, and finishes with an ID block whose launch digest is what
// `sev snp measure` predicts for the same images — SNP_LAUNCH_FINISH compares it with the digest
// the emulated firmware computed, byte for byte, and refuses any other (BAD_MEASUREMENT). Each
// case runs in a fresh emulator of a host with SNP enabled (`sev-emu run --host-snp`); SNP VMs
// are the software KVM's (the host's own /dev/kvm cannot run them).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { fixturesDir, nodeScript, sev, skipBecause, underFreshEmulator } from '../helpers/env';
import type { SnpVmmArgs, SnpVmmResult } from '../../scripts/snp-vmm';

const VMM = path.join(__dirname, 'snp-vmm.js');
const RULES = path.join(__dirname, 'snp-rules.js');
const SNP_HOST = ['--host-snp', '--kvm', 'soft'];

function runVmm(args: SnpVmmArgs): SnpVmmResult {
  const r = underFreshEmulator(SNP_HOST, [process.execPath, VMM, JSON.stringify(args)]);
  assert.ok(r.stdout.trim(), `the VMM printed nothing: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as SnpVmmResult;
}

describe('launch: SEV-SNP on the software machine', function () {
  this.timeout(240_000);
  let dir: string;
  let measurementDir: string;
  let signature: number;

  before(function () {
    measurementDir = path.join(fixturesDir(), 'snp', 'measurement');
    if (!fs.existsSync(path.join(measurementDir, 'ovmf_AmdSev_suffix.bin'))) skipBecause(this, `no SNP measurement fixtures in ${measurementDir}`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'snp-launch-'));
    fs.writeFileSync(path.join(dir, 'kernel'), Buffer.alloc(70_000, 0x90));
    fs.writeFileSync(path.join(dir, 'initrd'), 'an initrd\n');
    // The vCPUs' CPUID signature, as the VMM puts it in RDX: the emulated EPYC's.
    const r = underFreshEmulator(SNP_HOST, nodeScript('console.log(lib.Kvm.open().supportedCpuid().find((e) => e.function === 1).eax >>> 0)'));
    assert.equal(r.status, 0, r.stderr);
    signature = Number(r.stdout.trim());
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  /** `sev snp measure` for these options, then `sev snp generate id-block` for that digest. */
  function expect(name: string, measureArgs: string[]): { digest: string; idBlock: string; idAuth: string } {
    const m = sev(['snp', 'measure', '--vcpu-sig', String(signature), ...measureArgs]);
    assert.equal(m.status, 0, m.stderr);
    const digest = m.stdout.trim();
    assert.match(digest, /^[0-9a-f]{96}$/);
    const idBlock = path.join(dir, `${name}.id-block`);
    const idAuth = path.join(dir, `${name}.id-auth`);
    const g = sev(['snp', 'generate', 'id-block', '--id-key', path.join(measurementDir, 'test_id_key.pem'),
      '--auth-key', path.join(measurementDir, 'test_auth_key.pem'), '--measurement', digest, '--id-block-out', idBlock, '--id-auth-out', idAuth]);
    assert.equal(g.status, 0, g.stderr);
    return { digest, idBlock, idAuth };
  }

  const ovmf = () => path.join(measurementDir, 'ovmf_AmdSev_suffix.bin');
  const boot = () => ({ kernel: path.join(dir, 'kernel'), initrd: path.join(dir, 'initrd'), append: 'console=ttyS0 root=/dev/vda' });
  const bootArgs = () => ['--kernel', boot().kernel, '--initrd', boot().initrd, '--append', boot().append];

  for (const vcpus of [1, 4]) {
    it(`OVMF with kernel hashes, ${vcpus} vCPU${vcpus > 1 ? 's' : ''}: the firmware's launch digest is sev snp measure's`, () => {
      const e = expect(`ovmf-${vcpus}`, ['--ovmf', ovmf(), '--vcpus', String(vcpus), ...bootArgs()]);
      const r = runVmm({ ovmf: ovmf(), vcpus, ...boot(), idBlock: e.idBlock, idAuth: e.idAuth });
      assert.deepEqual(r, { ok: true, signature });
    });
  }

  it('COCONUT-SVSM below OVMF, 2 vCPUs: the firmware\'s launch digest is sev snp measure\'s', () => {
    const svsmOvmf = path.join(measurementDir, 'sev-snp-measure_svsm_ovmf.fd');
    const svsm = path.join(measurementDir, 'sev-snp-measure_svsm.bin');
    const e = expect('svsm', ['--mode', 'snp-svsm', '--ovmf', svsmOvmf, '--svsm', svsm, '--vars-size', '540672', '--vcpus', '2']);
    const r = runVmm({ ovmf: svsmOvmf, svsm, varsSize: 540672, vcpus: 2, idBlock: e.idBlock, idAuth: e.idAuth });
    assert.deepEqual(r, { ok: true, signature });
  });

  it('any other launch is refused: another command line or vCPU count is BAD_MEASUREMENT, another policy POLICY_FAILURE', () => {
    const e = expect('ovmf-other', ['--ovmf', ovmf(), '--vcpus', '2', ...bootArgs()]);
    const base: SnpVmmArgs = { ovmf: ovmf(), vcpus: 2, ...boot(), idBlock: e.idBlock, idAuth: e.idAuth };
    assert.equal(runVmm({ ...base, append: 'console=ttyS1 root=/dev/vda' }).firmwareStatus, 'BAD_MEASUREMENT');
    assert.equal(runVmm({ ...base, vcpus: 3 }).firmwareStatus, 'BAD_MEASUREMENT');
    // SMT + reserved + DEBUG: the ID block says 0x30000.
    assert.equal(runVmm({ ...base, policy: '0xb0000' }).firmwareStatus, 'POLICY_FAILURE');
    // Without SMT allowed, on an SMT host, the firmware refuses to start the launch at all.
    assert.match(runVmm({ ...base, policy: '0x20000' }).error ?? '', /SNP_LAUNCH_START.*POLICY_FAILURE/);
  });

  it('a CPUID page the platform refuses: INVALID_PARAM, and the accepted values are written back to the source page', () => {
    const r = runVmm({ ovmf: ovmf(), vcpus: 1, badCpuidEcx: 0xffffffff });
    assert.equal(r.ok, false);
    assert.equal(r.firmwareStatus, 'INVALID_PARAM');
    assert.match(r.error ?? '', /^SNP_LAUNCH_UPDATE/);
    // The firmware cleared what this CPU lacks and kept what it has (and the hypervisor bit).
    assert.ok(r.cpuidEcxBack !== undefined && r.cpuidEcxBack !== 0xffffffff && (r.cpuidEcxBack & (1 << 31)) !== 0, String(r.cpuidEcxBack));
  });

  it("the kernel's rules: order, SNP-only commands, private guest_memfd ranges, pages launched once, partial progress", () => {
    const r = underFreshEmulator(SNP_HOST, [process.execPath, RULES]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const seen = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.ok((seen.vmTypes as number[]).includes(4), 'KVM_CAP_VM_TYPES offers KVM_X86_SNP_VM');
    assert.deepEqual(
      {
        updateBeforeInit: seen.updateBeforeInit, init2GhcbV1: seen.init2GhcbV1, legacyCommand: seen.legacyCommand,
        updateBeforeStart: seen.updateBeforeStart, finishBeforeStart: seen.finishBeforeStart, startTwice: seen.startTwice,
        outsideGmem: seen.outsideGmem, sharedPage: seen.sharedPage, twice: seen.twice,
        finishWithoutVcpus: seen.finishWithoutVcpus, finish: seen.finish, updateAfterFinish: seen.updateAfterFinish,
        reqCertsAfterVcpu: seen.reqCertsAfterVcpu,
      },
      {
        updateBeforeInit: 'EINVAL', init2GhcbV1: 'EINVAL', legacyCommand: 'EPERM',
        updateBeforeStart: 'EINVAL', finishBeforeStart: 'EINVAL', startTwice: 'EINVAL',
        // kvm_gmem_populate: not a guest_memfd slot is EINVAL; a shared page or one already
        // assigned fails the first page, which snp_launch_update reports as EIO.
        outsideGmem: 'EINVAL', sharedPage: 'EIO', twice: 'EIO',
        finishWithoutVcpus: 'ok', finish: 'EIO INVALID_GUEST_STATE', updateAfterFinish: 'EIO',
        reqCertsAfterVcpu: 'EINVAL',
      },
    );
    assert.match(String(seen.policyWithoutMbo), /^argument: .*bit 17/);
    assert.match(String(seen.unalignedLength), /^argument: .*multiple of 0x1000/);
    assert.match(String(seen.zeroWithSource), /^argument: .*zero pages take no source/);
    assert.match(String(seen.unknownType), /^argument: .*type must be one of/);
    assert.deepEqual(seen.first, { pages: 2, guestPhysAddr: 0x2000, length: 0, sourceOffset: 0x2000 });
    // Private pages 2..13, shared 14 and 15: success after 12 pages, 2 left to do.
    assert.deepEqual(seen.partial, { pages: 12, guestPhysAddr: 0xe000, length: 0x2000, sourceOffset: 0 });
    assert.deepEqual([seen.guestsBefore, seen.guestsDuring, seen.guestsWhileGmemOpen, seen.guestsAfterClose], [0, 1, 1, 0]);
  });

  it('without --host-snp there are no SNP VMs: KVM_CAP_VM_TYPES lacks them and creating one is EINVAL', () => {
    const r = underFreshEmulator(['--generation', 'milan', '--kvm', 'soft'], nodeScript(`
      const kvm = lib.Kvm.open();
      let create;
      try { kvm.createVm({ type: 'snp' }); create = 'ok'; } catch (e) { create = e.code; }
      console.log(JSON.stringify({ types: kvm.supportedVmTypes(), create }));`));
    assert.equal(r.status, 0, r.stderr);
    const seen = JSON.parse(r.stdout) as { types: number[]; create: string };
    assert.ok(!seen.types.includes(4));
    assert.equal(seen.create, 'EINVAL');
  });
});
