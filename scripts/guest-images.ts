// The SEV-ES and SEV-SNP guests of the demo and the tests (guests/*.S, assembled by scripts/build-guests.sh
// into build/guests/ at install time), with the vCPU state the VMM starts them in and the VMSA
// the guest owner predicts from it.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { buildVmsa, type Vmsa } from '../lib/owner';
import { guidToBytes, KNOWN_GUIDS } from '../lib/owner/guid';
import { SEV_METADATA_SECTION } from '../lib/owner/ovmf';
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

/**
 * The SEV-SNP demo guest (guests/snp): guest-physical layout, as guests/snp/layout.h has it, and
 * its exchange page's offsets.
 */
export const SNP_GUEST = Object.freeze({
  imageBase: 0xffff0000,
  imageSize: 0x10000,
  pageTables: { gpa: 0x20000, size: 0x5000 },
  stack: { gpa: 0x2d000, size: 0x3000 },
  /** The extended report's certificate buffer (shared, 4 pages). */
  certs: { gpa: 0x29000, pages: 4 },
  secrets: 0x30000,
  cpuid: 0x31000,
  ghcb: 0x25000,
  exchange: 0x28000,
  x: { nonce: 0x000, pub: 0x040, report: 0x100, peer: 0x600, iv: 0x620, tag: 0x630, ctLen: 0x640, ct: 0x650, ctMax: 0x400 },
  portEvent: 0x10,
  portText: 0x11,
  eventReportReady: 1,
});

const METADATA_OFFSET = 0xf000; // where the image keeps its SEV metadata
const FOOTER_END = 0x10000 - 0x20; // OVMF's footer table ends 32 bytes before the image's end

function footerEntry(guid: string, data: Buffer): Buffer {
  const size = Buffer.alloc(2);
  size.writeUInt16LE(data.length + 18);
  return Buffer.concat([data, size, guidToBytes(guid)]);
}

const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
};

/**
 * The demo guest as a firmware image, shaped like OVMF so that QEMU-style VMMs launch it and
 * `sev snp measure --ovmf` measures it: the code (runs from the reset vector), its SEV metadata
 * (SEC memory for the page tables and stack, the secrets and CPUID pages), an OVMF footer table
 * (SEV metadata offset, SEV-ES AP reset block) and the reset vector's jump to the code.
 */
export function snpDemoFirmware(): Buffer {
  const { bytes, symbols } = loadGuest('snp_demo');
  if (bytes.length > METADATA_OFFSET) throw new Error(`the SNP demo guest's code (${bytes.length} bytes) overlaps its metadata`);
  const image = Buffer.alloc(SNP_GUEST.imageSize);
  bytes.copy(image, 0);
  const sections: Array<[number, number, number]> = [
    [SNP_GUEST.pageTables.gpa, SNP_GUEST.pageTables.size, SEV_METADATA_SECTION.snpSecMemory],
    [SNP_GUEST.stack.gpa, SNP_GUEST.stack.size, SEV_METADATA_SECTION.snpSecMemory],
    [SNP_GUEST.secrets, 0x1000, SEV_METADATA_SECTION.snpSecrets],
    [SNP_GUEST.cpuid, 0x1000, SEV_METADATA_SECTION.cpuid],
  ];
  const metadata = Buffer.concat([Buffer.from('ASEV', 'latin1'), u32(16 + 12 * sections.length), u32(1), u32(sections.length),
    ...sections.map(([gpa, size, type]) => Buffer.concat([u32(gpa), u32(size), u32(type)]))]);
  metadata.copy(image, METADATA_OFFSET);
  const body = Buffer.concat([
    footerEntry(KNOWN_GUIDS.ovmfSevMetadata, u32(SNP_GUEST.imageSize - METADATA_OFFSET)),
    footerEntry(KNOWN_GUIDS.sevEsResetBlock, u32(symbols.ap_entry16)),
  ]);
  const footer = footerEntry(KNOWN_GUIDS.ovmfTableFooter, Buffer.alloc(0));
  footer.writeUInt16LE(body.length + footer.length, 0); // the footer's size covers the whole table
  const table = Buffer.concat([body, footer]);
  table.copy(image, FOOTER_END - table.length);
  // At 0xfffffff0: JMP rel16 to the image's first byte (CS base 0xffff0000).
  const jmpAt = SNP_GUEST.imageSize - 0x10;
  image[jmpAt] = 0xe9;
  image.writeUInt16LE((0 - (jmpAt + 3)) & 0xffff, jmpAt + 1);
  return image;
}
