// SEV-SNP (and SEV / SEV-ES) launch digests against every measurement and OVMF-hash vector of
// ../shared/fixtures/snp/vectors.json (virtee/sev and sev-snp-measure test cases), byte for
// byte, plus the GCTX chain and the VMSA fields written out from the SNP ABI spec and APM.
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { SevArgumentError } from '../../lib/errors';
import { OvmfImage } from '../../lib/owner/ovmf';
import { buildVmsa, cpuidSignature, cpuTypeSignature } from '../../lib/owner/vmsa-builder';
import { Gctx, VMSA_GPA } from '../../lib/snp/gctx';
import { calcLaunchDigest, calcSnpOvmfHash, type LaunchDigestOptions, type MeasurementMode } from '../../lib/snp/measurement';
import { snpVmsaPages } from '../../lib/snp/vmsa';
import { fixturesDir } from '../helpers/env';
import { syntheticOvmf } from '../owner/synthetic-ovmf';

interface VectorArgs {
  mode: MeasurementMode;
  vcpus: number | null;
  vcpu_type: string | null;
  vcpu_family: number | null;
  vcpu_model: number | null;
  vcpu_stepping: number | null;
  vcpu_sig: string | null;
  ovmf: string;
  guest_features: string | null;
  kernel: 'empty' | null;
  initrd: 'empty' | null;
  append: string | null;
  ovmf_hash: string | null;
  vmm_type: 'QEMU' | 'EC2' | 'GCE' | null;
  svsm?: string;
  ovmf_vars_size?: number;
}
interface MeasurementVector { name: string; source: string; note?: string; args: VectorArgs; expected: string | null; expect_error?: string }
interface Vectors {
  measurement: MeasurementVector[];
  snp_ovmf_hash: Array<{ name: string; source: string; ovmf: string; expected: string }>;
  vcpu_types: { table: Record<string, { family: number; model: number; stepping: number; sig: string }> };
  cpu_sig: Array<{ name: string; family: number; model: number; stepping: number; expected: string }>;
}

const snpDir = path.join(fixturesDir(), 'snp');
const vectorsFile = path.join(snpDir, 'vectors.json');
const vectors: Vectors | null = fs.existsSync(vectorsFile) ? JSON.parse(fs.readFileSync(vectorsFile, 'utf8')) : null;
const measurementFile = (name: string) => fs.readFileSync(path.join(snpDir, 'measurement', name));

/** `before` hook body: fail (CI) or skip (elsewhere) when the SNP fixtures are absent. */
function requireSnpFixtures(ctx: Mocha.Context): void {
  if (vectors) return;
  const why = `SNP fixtures not found at ${vectorsFile} (set SEV_FIXTURES to the shared fixtures directory)`;
  if (process.env.CI) throw new Error(why);
  console.log(`      skipped: ${why}`);
  ctx.skip();
}

/** The vector's arguments as options; the fixtures' "empty" kernel/initrd is a zero-length file. */
function options(v: MeasurementVector): LaunchDigestOptions {
  const a = v.args;
  const file = (f: 'empty' | null) => (f === 'empty' ? Buffer.alloc(0) : undefined);
  // The EC2 cases of virtee/sev use RDX 0, those of sev-snp-measure 0x600 (the default).
  const ec2Rdx = a.vmm_type === 'EC2' && v.source.startsWith('virtee/sev ') ? 0 : undefined;
  return {
    mode: a.mode,
    ovmf: measurementFile(a.ovmf),
    vcpus: a.vcpus ?? undefined,
    // A type name, or the family/model/stepping written next to it: both must give the same.
    vcpuType: a.vcpu_type ?? undefined,
    kernel: file(a.kernel),
    initrd: file(a.initrd),
    append: a.append ?? undefined,
    guestFeatures: a.guest_features === null ? undefined : BigInt(a.guest_features),
    ovmfHash: a.ovmf_hash ?? undefined,
    vmmType: a.vmm_type === null ? undefined : (a.vmm_type.toLowerCase() as LaunchDigestOptions['vmmType']),
    ec2Rdx,
    svsm: a.svsm === undefined ? undefined : measurementFile(a.svsm),
    varsSize: a.ovmf_vars_size,
  };
}

describe('snp: launch digest vectors (virtee/sev, sev-snp-measure)', function () {
  before(function () {
    requireSnpFixtures(this);
  });

  for (const v of vectors?.measurement ?? []) {
    it(`${v.args.mode} ${v.name} (${v.source.split(' ')[0]})`, () => {
      const o = options(v);
      if (v.expected === null) {
        assert.throws(() => calcLaunchDigest(o), (e: unknown) => e instanceof SevArgumentError && /hashes|SNP_KERNEL_HASHES/i.test(e.message), v.expect_error);
        return;
      }
      assert.equal(calcLaunchDigest(o).toString('hex'), v.expected);
      if (v.args.vcpu_family !== null && v.args.mode !== 'sev') {
        const bySig = { ...o, vcpuType: undefined, vcpuSig: Number(v.args.vcpu_sig) };
        const byFms = { ...o, vcpuType: undefined, vcpuFamily: v.args.vcpu_family, vcpuModel: v.args.vcpu_model!, vcpuStepping: v.args.vcpu_stepping! };
        assert.equal(calcLaunchDigest(bySig).toString('hex'), v.expected);
        assert.equal(calcLaunchDigest(byFms).toString('hex'), v.expected);
      }
    });
  }

  it('covers all 48 cases in the four modes', function () {
    const modes = new Set(vectors!.measurement.map((v) => v.args.mode));
    assert.equal(vectors!.measurement.length, 48);
    assert.deepEqual([...modes].sort(), ['sev', 'seves', 'snp', 'snp-svsm']);
  });

  for (const v of vectors?.snp_ovmf_hash ?? []) {
    it(`SNP OVMF hash ${v.name} (${v.source.split(' ')[0]})`, () => {
      assert.equal(calcSnpOvmfHash(measurementFile(v.ovmf)).toString('hex'), v.expected);
    });
  }

  it('a precomputed OVMF hash gives the digest of the image it was computed from', () => {
    const ovmf = measurementFile('ovmf_AmdSev_suffix.bin');
    const base: LaunchDigestOptions = { mode: 'snp', ovmf, vcpus: 2, vcpuType: 'EPYC-Milan', kernel: randomBytes(100), append: 'x' };
    assert.deepEqual(calcLaunchDigest({ ...base, ovmfHash: calcSnpOvmfHash(ovmf) }), calcLaunchDigest(base));
    assert.notDeepEqual(calcLaunchDigest({ ...base, ovmfHash: Buffer.alloc(48) }), calcLaunchDigest(base));
  });

  it('every input changes the SNP digest', () => {
    const base: LaunchDigestOptions = { mode: 'snp', ovmf: measurementFile('ovmf_AmdSev_suffix.bin'), vcpus: 2, vcpuType: 'EPYC-v4', kernel: Buffer.from('k'), initrd: Buffer.from('i'), append: 'a' };
    const variants: Array<Partial<LaunchDigestOptions>> = [
      { vcpus: 3 }, { vcpuType: 'EPYC-Genoa' }, { kernel: Buffer.from('K') }, { initrd: Buffer.from('I') }, { append: 'b' },
      { guestFeatures: 0x21 }, { vmmType: 'ec2' }, { vmmType: 'gce' }, { vmmType: 'krun' }, { x87Init: false },
    ];
    const seen = new Set([calcLaunchDigest(base).toString('hex')]);
    for (const v of variants) seen.add(calcLaunchDigest({ ...base, ...v }).toString('hex'));
    assert.equal(seen.size, variants.length + 1);
  });

  it('SVSM mode takes the variable store size from a file', () => {
    const svsmCase = vectors!.measurement.find((v) => v.args.mode === 'snp-svsm')!;
    const o = options(svsmCase);
    const vars = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'snp-vars-')), 'OVMF_VARS.fd');
    fs.writeFileSync(vars, Buffer.alloc(o.varsSize!));
    assert.equal(calcLaunchDigest({ ...o, varsSize: undefined, varsFile: vars }).toString('hex'), svsmCase.expected);
    assert.notEqual(calcLaunchDigest({ ...o, varsSize: o.varsSize! + 4096 }).toString('hex'), svsmCase.expected);
    fs.rmSync(path.dirname(vars), { recursive: true });
  });

  it('CPU type names and signatures agree with the vcpu_types table', () => {
    for (const [name, t] of Object.entries(vectors!.vcpu_types.table)) {
      assert.deepEqual(cpuTypeSignature(name), { family: t.family, model: t.model, stepping: t.stepping }, name);
      assert.equal(cpuidSignature(t), Number(t.sig), name);
    }
    for (const c of vectors!.cpu_sig) assert.equal(cpuidSignature(c), Number(c.expected), c.name);
  });
});

describe('snp: GCTX and VMSA layout', () => {
  const sha384 = (...parts: Buffer[]) => parts.reduce((h, p) => h.update(p), createHash('sha384')).digest();

  it('each page replaces the digest with SHA-384 of its 0x70-byte PAGE_INFO', () => {
    const page = randomBytes(4096);
    const g = new Gctx(undefined, { record: true });
    g.updateNormalPages(0x1000, page);
    g.updateEmptyPages('cpuid', 0x2000);
    const info1 = Buffer.concat([Buffer.alloc(48), sha384(page), Buffer.from('7000' + '01' + '00' + '00000000', 'hex'), Buffer.from('0010000000000000', 'hex')]);
    const ld1 = sha384(info1);
    const info2 = Buffer.concat([ld1, Buffer.alloc(48), Buffer.from('7000' + '06' + '00' + '00000000', 'hex'), Buffer.from('0020000000000000', 'hex')]);
    assert.deepEqual(g.digest(), sha384(info2));
    assert.deepEqual(g.steps!.map((s) => [s.type, s.gpa]), [['normal', 0x1000], ['cpuid', 0x2000]]);
    assert.deepEqual(g.steps![0].digest, ld1);
  });

  it('VMSA pages are measured at GPA 0xFFFFFFFFF000 with page type 2', () => {
    const page = randomBytes(4096);
    const g = new Gctx();
    g.updateVmsaPage(page);
    const gpa = Buffer.alloc(8);
    gpa.writeBigUInt64LE(BigInt(VMSA_GPA));
    assert.deepEqual(g.digest(), sha384(Buffer.alloc(48), sha384(page), Buffer.from('7000020000000000', 'hex'), gpa));
  });

  it('partial pages, bad seeds and bad VMSA sizes are argument errors', () => {
    assert.throws(() => new Gctx().updateNormalPages(0, Buffer.alloc(100)), SevArgumentError);
    assert.throws(() => new Gctx(Buffer.alloc(32)), SevArgumentError);
    assert.throws(() => new Gctx().updateVmsaPage(Buffer.alloc(4095)), SevArgumentError);
  });

  it('QEMU SNP VMSA: RDX = signature, SEV_FEATURES, MXCSR 0x1F80, FCW 0x37F; APs at the OVMF reset address', function () {
    requireSnpFixtures(this);
    const firmware = OvmfImage.parse(measurementFile('ovmf_AmdSev_suffix.bin'));
    const [bsp, ap] = snpVmsaPages({ vcpus: 2, vmm: 'qemu', signature: 0xa00f11, sevFeatures: 0x21, firmware });
    const at = (p: Buffer, o: number, n: number) => p.readUIntLE(o, n);
    assert.equal(at(bsp, 0x310, 4), 0xa00f11); // RDX
    assert.equal(at(bsp, 0x3b0, 4), 0x21); // SEV_FEATURES
    assert.equal(at(bsp, 0x408, 4), 0x1f80); // MXCSR
    assert.equal(at(bsp, 0x410, 2), 0x37f); // x87 FCW
    assert.equal(at(bsp, 0x178, 4), 0xfff0); // RIP
    assert.equal(Number(bsp.readBigUInt64LE(0x18)), 0xffff0000); // CS base
    assert.equal(at(ap, 0x178, 4), firmware.sevEsResetAddress() & 0xffff);
    assert.equal(Number(ap.readBigUInt64LE(0x18)), firmware.sevEsResetAddress() & 0xffff0000);
  });

  it('EC2 and GCE VMSAs: RDX 0x600, their own attributes and PAT', () => {
    const ec2 = buildVmsa({ cpu: 0, userspace: 'ec2', signature: 0xa00f11 });
    assert.equal(ec2.get('rdx'), 0x600n);
    assert.deepEqual([ec2.segment('cs').attrib, ec2.segment('ss').attrib, ec2.segment('tr').attrib], [0x9a, 0x92, 0x83]);
    assert.equal(buildVmsa({ cpu: 1, userspace: 'ec2', resetAddress: 0x80b004 }).segment('cs').attrib, 0x9b);
    assert.equal(buildVmsa({ cpu: 0, userspace: 'ec2', rdx: 0 }).get('rdx'), 0n);
    const gce = buildVmsa({ cpu: 0, userspace: 'gce' });
    assert.equal(gce.get('g_pat'), 0x70106n);
    assert.deepEqual([gce.segment('cs').attrib, gce.segment('ss').attrib, gce.segment('tr').attrib], [0x9b, 0x93, 0x8b]);
  });
});

describe('snp: bad measurement input', () => {
  const ovmf = () => measurementFile('ovmf_AmdSev_suffix.bin');
  before(function () {
    requireSnpFixtures(this);
  });

  it('a vCPU family above 270 is refused (it does not fit the CPUID signature)', () => {
    assert.equal(cpuidSignature({ family: 270, model: 0, stepping: 0 }), 0x0ff00f00);
    assert.throws(() => cpuidSignature({ family: 271, model: 0, stepping: 0 }), (e: unknown) => e instanceof SevArgumentError && /family.*270/.test(e.message));
    assert.throws(() => calcLaunchDigest({ mode: 'snp', ovmf: ovmf(), vcpus: 1, vcpuFamily: 271, vcpuModel: 1, vcpuStepping: 1 }), /family.*270/);
  });

  it('missing or inconsistent inputs are argument errors naming the problem', () => {
    const cases: Array<[Partial<LaunchDigestOptions>, RegExp]> = [
      [{ vcpus: undefined }, /vCPU count/],
      [{ vcpus: 0 }, /vCPU count/],
      [{ vcpus: 5000 }, /vCPU count/],
      [{ vcpuType: undefined }, /vCPU type/],
      [{ vcpuType: 'Skylake' }, /unknown CPU type/],
      [{ vcpuType: undefined, vcpuFamily: 25 }, /model and the stepping/],
      [{ ovmfHash: 'abcd' }, /OVMF hash must be 48 bytes/],
      [{ mode: 'seves', ovmfHash: '00'.repeat(48) }, /only works with mode snp/],
      [{ initrd: Buffer.alloc(1) }, /needs a kernel/],
      [{ mode: 'snp-svsm' }, /SVSM image/],
      [{ mode: 'snp-svsm', vmmType: 'ec2' }, /only implemented for QEMU/],
    ];
    for (const [o, re] of cases) {
      assert.throws(() => calcLaunchDigest({ mode: 'snp', ovmf: ovmf(), vcpus: 1, vcpuType: 'EPYC-v4', ...o }), (e: unknown) => e instanceof SevArgumentError && re.test(e.message), re.source);
    }
  });

  it('SEV-ES and SNP need the SEV-ES reset block even for one vCPU, as QEMU and sev-snp-measure do (differential finding)', () => {
    // QEMU exits ("failed to locate and/or save reset vector") for an SEV-ES/SNP firmware without
    // it; sev-snp-measure refuses it whatever the vCPU count. We used to measure one vCPU anyway.
    const noReset = syntheticOvmf({ size: 8192 });
    for (const mode of ['seves', 'snp'] as const) {
      for (const vmmType of ['qemu', 'ec2', 'gce'] as const) {
        assert.throws(() => calcLaunchDigest({ mode, ovmf: noReset, vcpus: 1, vcpuType: 'EPYC-v4', vmmType }), (e: unknown) => e instanceof SevArgumentError && /reset block/.test(e.message), `${mode} ${vmmType}`);
      }
    }
    // libkrun's boot vCPU does not come from OVMF's reset block.
    assert.equal(calcLaunchDigest({ mode: 'snp', ovmf: noReset, vcpus: 1, vmmType: 'krun' }).length, 48);
    assert.equal(calcLaunchDigest({ mode: 'seves', ovmf: syntheticOvmf({ size: 8192, resetAddress: 0x80b004 }), vcpus: 1, vcpuType: 'EPYC-v4' }).length, 32);
  });

  it('corrupt OVMF SEV metadata is an argument error', () => {
    const img = Buffer.from(ovmf());
    const entry = OvmfImage.parse(img).entry('dc886566-984a-4798-a75e-5585a7bf67cc')!;
    const start = img.length - entry.readUInt32LE(0);
    img.write('XSEV', start, 'latin1');
    assert.throws(() => OvmfImage.parse(img), (e: unknown) => e instanceof SevArgumentError && /SEV metadata.*ASEV/.test(e.message));
    img.write('ASEV', start, 'latin1');
    img.writeUInt32LE(7, start + 16 + 8); // the first section's type
    assert.throws(() => OvmfImage.parse(img), /unknown section type 7/);
  });
});
