// The VMSA layout (APM vol. 2 Table B-4, sevctl's field list) and the initial-state builder.
import * as assert from 'node:assert/strict';

import { Vmsa, VMSA_FIELDS } from '../../lib/owner/vmsa';
import { applyVmsaOptions, buildVmsa, cpuidSignature, cpuTypeSignature } from '../../lib/owner/vmsa-builder';
import { OVMF, readFixture, requireSevctlFixtures } from './fixtures';
import { syntheticOvmf } from './synthetic-ovmf';

describe('owner: VMSA', () => {
  it('fields sit at the APM offsets', () => {
    const at = Object.fromEntries(VMSA_FIELDS.map((f) => [f.name, f.offset]));
    const apm: Record<string, number> = {
      es: 0x0, cs: 0x10, tr: 0x90, cpl: 0xcb, efer: 0xd0, cr4: 0x148, cr0: 0x158, rflags: 0x170, rip: 0x178,
      rsp: 0x1d8, rax: 0x1f8, cr2: 0x240, g_pat: 0x268, spec_ctrl: 0x2e0, pkru: 0x2e8, rcx: 0x308, rdx: 0x310,
      r15: 0x378, sw_exit_code: 0x390, xcr0: 0x3e8, x87_state_gpa: 0x400,
    };
    for (const [name, offset] of Object.entries(apm)) assert.equal(at[name], offset, name);
    const last = VMSA_FIELDS[VMSA_FIELDS.length - 1];
    assert.equal(last.offset + 8, 0x408);
  });

  it('registers inside reserved areas (SEV_FEATURES, VMPL) are addressable', () => {
    const v = new Vmsa().set('sev_features', 0x1).set('virtual_tom', 0x8000_0000_0000n);
    v.vmpl = 2;
    assert.equal(v.page.readBigUInt64LE(0x3b0), 1n);
    assert.equal(v.page.readBigUInt64LE(0x3c8), 0x8000_0000_0000n);
    assert.equal(v.page[0xca], 2);
    assert.equal(v.get('sev_features'), 1n);
  });

  it('64-bit values keep full precision in get/set and in the sevctl JSON', () => {
    const v = new Vmsa().set('rbx', 0xffff_ffff_ffff_fff1n);
    assert.equal(v.get('rbx'), 0xffff_ffff_ffff_fff1n);
    assert.match(v.toSevctlJson(), /"rbx": 18446744073709551601,/);
  });

  it('CPUID signatures of EPYC generations', () => {
    assert.equal(cpuidSignature({ family: 23, model: 1, stepping: 2 }), 0x800f12); // Naples
    assert.equal(cpuidSignature({ family: 23, model: 49, stepping: 0 }), 0x830f10); // Rome
    assert.equal(cpuidSignature({ family: 25, model: 1, stepping: 1 }), 0xa00f11); // Milan
    assert.equal(cpuidSignature({ family: 25, model: 17, stepping: 0 }), 0xa10f10); // Genoa
    assert.equal(cpuidSignature({ family: 6, model: 0x3a, stepping: 9 }), 0x306a9);
    assert.deepEqual(cpuTypeSignature('EPYC-Rome-v3'), { family: 23, model: 49, stepping: 0 });
    assert.throws(() => cpuTypeSignature('Skylake'), /unknown CPU type/);
  });

  it('QEMU vCPU 0 starts at the reset vector, APs at the OVMF reset block', () => {
    const firmware = syntheticOvmf({ resetAddress: 0x80b004 });
    const bsp = buildVmsa({ cpu: 0, userspace: 'qemu', firmware });
    assert.equal(bsp.get('rip'), 0xfff0n);
    assert.deepEqual(bsp.segment('cs'), { selector: 0xf000, attrib: 0x9b, limit: 0xffff, base: 0xffff0000n });
    const ap = buildVmsa({ cpu: 3, userspace: 'qemu', firmware });
    assert.equal(ap.get('rip'), 0xb004n);
    assert.equal(ap.segment('cs').base, 0x800000n);
    assert.equal(ap.get('rdx'), 0n, 'no signature given');
    // Without firmware the AP keeps the reset vector (as sevctl does).
    assert.equal(buildVmsa({ cpu: 1, userspace: 'qemu' }).get('rip'), 0xfff0n);
  });

  it('libkrun: its segment attributes, boot stack, and AP entry at 9100:0', () => {
    const bsp = buildVmsa({ cpu: 0, userspace: 'krun' });
    assert.equal(bsp.segment('cs').attrib, 0x9a);
    assert.equal(bsp.segment('ss').attrib, 0x92);
    assert.equal(bsp.get('rsp'), 0x8ff0n);
    assert.equal(bsp.get('rsi'), 0x7000n);
    const ap = buildVmsa({ cpu: 1, userspace: 'krun', firmware: syntheticOvmf({ resetAddress: 0x80b004 }) });
    assert.deepEqual([ap.get('rip'), ap.get('rsp'), ap.segment('cs').selector, ap.segment('cs').base], [0n, 0n, 0x9100, 0x91000n]);
  });

  it('update changes only the signature and the AP start', () => {
    const v = buildVmsa({ cpu: 0, userspace: 'qemu' });
    const before = v.toBuffer();
    applyVmsaOptions(v, { cpu: 0, userspace: 'qemu' });
    assert.deepEqual(v.page, before);
    applyVmsaOptions(v, { cpu: 0, userspace: 'qemu', family: 25, model: 1, stepping: 1 });
    assert.equal(v.get('rdx'), 0xa00f11n);
    const changed = [...v.page.keys()].filter((i) => v.page[i] !== before[i]);
    assert.ok(changed.every((i) => i >= 0x310 && i < 0x318), 'only RDX changed');
  });

  it('the sevctl VMSA files parse and re-serialize unchanged', function () {
    requireSevctlFixtures(this);
    for (const n of [0, 1]) {
      const page = readFixture(`vmsa${n}.bin`);
      assert.deepEqual(new Vmsa(page).toBuffer(), page);
      const built = buildVmsa({ cpu: n, userspace: 'qemu', family: 25, model: 1, stepping: 1, firmware: readFixture(OVMF) });
      assert.deepEqual(built.page, page);
    }
  });

  it('a page of the wrong size is refused', () => {
    assert.throws(() => new Vmsa(Buffer.alloc(4095)), /4096 bytes/);
  });
});
