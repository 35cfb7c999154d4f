// The SEV-ES guests of the demo and the tests (guests/*.S, assembled by scripts/build-guests.sh
// into build/guests/ at install time), with the vCPU state the VMM starts them in and the VMSA
// the guest owner predicts from it.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { buildVmsa, type Vmsa } from '../lib/owner';
import { GuestMemory, type Kvm, type RegsUpdate, type Sregs, type Vcpu, type Vm } from '../lib/kvm';
import { SevLaunch } from '../lib/launch';
import type { SevPlatform } from '../lib/platform';

const ROOT = path.resolve(__dirname, '..', '..');

/** Guest-physical layout shared by the SEV-ES guests (guests/es_long_mode.inc). */
export const ES_GUEST = Object.freeze({
  code: 0x1000,
  ghcb: 0x6000,
  /** Where the SEV-ES demo guest reads its secret (a NUL-terminated string). */
  secret: 0x7000,
  /** The #VC test guest's report in the shared GHCB page: error code, then RIP. */
  report: 0x6900,
  memorySize: 0x10000,
  /** The port the guests report through. */
  port: 0x11,
});

export interface GuestImage {
  bytes: Buffer;
  /** Global labels of the source, by name: their guest-physical addresses. */
  symbols: Record<string, number>;
}

/** Loads build/guests/NAME.bin and its symbols. */
export function loadGuest(name: string): GuestImage {
  const dir = path.join(ROOT, 'build', 'guests');
  const bin = path.join(dir, `${name}.bin`);
  if (!fs.existsSync(bin)) {
    throw new Error(`guest image ${bin} is missing: run \`npm run build\` (it assembles guests/*.S with cc and binutils)`);
  }
  const symbols: Record<string, number> = {};
  for (const line of fs.readFileSync(path.join(dir, `${name}.sym`), 'utf8').split('\n')) {
    const [sym, addr] = line.trim().split(/\s+/);
    if (sym && addr && !sym.startsWith('_')) symbols[sym] = Number(BigInt(addr));
  }
  return { bytes: fs.readFileSync(bin), symbols };
}

// Flat 32-bit protected mode: selectors 0x08 (code) and 0x10 (data) as the guest's own GDT has
// them; TR and LDTR as QEMU sets them at reset. The VMM sets all of it before LAUNCH_UPDATE_VMSA.
const CODE32 = { base: 0n, limit: 0xffffffff, selector: 0x08, type: 0xb, present: 1, dpl: 0, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
const DATA32 = { ...CODE32, selector: 0x10, type: 0x3 };

function esGuestSregs(): Partial<Sregs> {
  return {
    cs: CODE32,
    ds: DATA32,
    es: DATA32,
    fs: DATA32,
    gs: DATA32,
    ss: DATA32,
    tr: { ...CODE32, selector: 0, limit: 0xffff, db: 0, s: 0, g: 0 },
    ldt: { ...CODE32, selector: 0, limit: 0xffff, type: 0x2, db: 0, s: 0, g: 0 },
    gdt: { base: 0n, limit: 0xffff },
    idt: { base: 0n, limit: 0xffff },
    cr0: 0x11n, // PE | ET
    cr3: 0n,
    cr4: 0n,
    efer: 0n,
  };
}

function esGuestRegs(): RegsUpdate {
  return { rip: ES_GUEST.code, rflags: 2, rsp: 0x9000, rdx: 0 };
}

/** Puts an SEV-ES guest's vCPU in its start state: KVM's CPUID, flat 32-bit protected mode at the code. */
export function startEsGuestVcpu(kvm: Kvm, vcpu: Vcpu): void {
  vcpu.setCpuid(kvm.supportedCpuid());
  vcpu.setSregs(esGuestSregs());
  vcpu.setRegs(esGuestRegs());
}

export interface EsGuest {
  vm: Vm;
  memory: GuestMemory;
  launch: SevLaunch;
  vcpu: Vcpu;
  close(): void;
}

/**
 * An SEV-ES VM running guest image `name`: KVM_SEV_ES_INIT on a default VM (VMSAs without FPU
 * state, as the owner's builder models them), the image at ES_GUEST.code, and vCPU 0 created
 * before the launch measures it, in its start state. The launch is initialised, not started.
 */
export async function createEsGuest(kvm: Kvm, platform: SevPlatform, name: string): Promise<EsGuest> {
  const vm = kvm.createVm({ type: 'default' });
  const memory = GuestMemory.create(ES_GUEST.memorySize);
  const close = () => {
    vm.close();
    memory.release();
  };
  try {
    vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, memory });
    memory.bytes().set(loadGuest(name).bytes, ES_GUEST.code);
    const launch = await SevLaunch.init(vm, platform, { mode: 'sev-es' });
    const vcpu = vm.createVcpu(0);
    startEsGuestVcpu(kvm, vcpu);
    return { vm, memory, launch, vcpu, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** The launch digest the owner predicts: SHA-256 over the measured code page, then the VMSA. */
export function esGuestLaunchDigest(code: Uint8Array): Buffer {
  return createHash('sha256').update(code).update(esGuestVmsa().page).digest();
}

/**
 * The guest owner's prediction of the VMSA of that vCPU (KVM_SEV_ES_INIT, so without FPU
 * state): the reset state KVM and QEMU give every vCPU, with the registers the VMM set.
 */
export function esGuestVmsa(): Vmsa {
  const attrib = (s: { type: number; s: number; present: number; dpl: number; db: number; g: number }) =>
    s.type | (s.s << 4) | (s.dpl << 5) | (s.present << 7) | (s.db << 10) | (s.g << 11);
  const v = buildVmsa({ cpu: 0, userspace: 'qemu' });
  v.set('cr0', 0x11).set('rip', ES_GUEST.code).set('rsp', 0x9000).set('rdx', 0).set('rflags', 2);
  v.setSegment('cs', { selector: 0x08, base: 0n, limit: 0xffffffff, attrib: attrib(CODE32) });
  for (const s of ['ds', 'es', 'fs', 'gs', 'ss'] as const) {
    v.setSegment(s, { selector: 0x10, base: 0n, limit: 0xffffffff, attrib: attrib(DATA32) });
  }
  return v;
}
