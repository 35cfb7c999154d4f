// A QEMU-style SEV-SNP launch of firmware (OVMF, or the SNP demo guest shaped like it), as a VMM
// built on node-sev would do it (QEMU target/i386/sev.c: sev_snp_launch_update_data and friends):
//   guest RAM 0 .. top of the OVMF metadata sections, and the flash at 4 GiB - its size, each a
//   memslot with a guest_memfd, all private; OVMF as NORMAL pages; then each SEV metadata section
//   as QEMU launches it (SEC memory and SVSM CAA zero pages, the secrets page, the CPUID page
//   from KVM_GET_SUPPORTED_CPUID, the kernel hashes page or zeros); vCPUs in QEMU's reset state
//   with RDX = the CPUID signature and the APs at OVMF's SEV-ES reset address; FINISH with the
//   ID block given. With an SVSM (COCONUT-SVSM under QEMU): the SVSM image below OVMF's variable
//   store, its metadata sections instead of OVMF's, every vCPU in flat 32-bit protected mode at
//   the SVSM's entry point.
import * as fs from 'node:fs';

import { SevError } from '../lib/errors';
import { GuestMemory, Kvm, type Vcpu, type Vm } from '../lib/kvm';
import { SnpLaunch } from '../lib/launch';
import { OvmfImage } from '../lib/owner/ovmf';
import { buildSevHashesTable } from '../lib/owner/sev-hashes';
import { SevPlatform } from '../lib/platform';
import { svsmEntry } from '../lib/snp/vmsa';

export interface SnpVmmArgs {
  /** The firmware image file (or its bytes). */
  ovmf: string | Uint8Array;
  vcpus: number;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Base64 files, as `sev snp generate id-block` writes them. */
  idBlock?: string;
  idAuth?: string;
  policy?: string;
  hostData?: string;
  /** COCONUT-SVSM image, and the size of OVMF's variable store between it and OVMF. */
  svsm?: string;
  varsSize?: number;
  /** KVM_SEV_SNP_ENABLE_REQ_CERTS: extended report requests exit to the VMM for certificates. */
  requestCertificates?: boolean;
  /** Leave these SEV metadata sections (indices) unlaunched, as a careless VMM would. */
  omitSections?: number[];
  /** Overwrite CPUID leaf 1 ECX in the CPUID page (a value the firmware refuses). */
  badCpuidEcx?: number;
}

export interface SnpVmmResult {
  ok: boolean;
  signature?: number;
  error?: string;
  firmwareStatus?: string;
  /** After a refused CPUID page: leaf 1 ECX as the firmware wrote it back. */
  cpuidEcxBack?: number;
}

const PAGE = 4096;
const MIB2 = 2 << 20;

function cpuidPage(entries: ReturnType<Kvm['supportedCpuid']>, badEcx?: number): Buffer {
  // SNP CPUID page: COUNT, reserved, then {EAX_IN, ECX_IN, XCR0_IN, XSS_IN, EAX, EBX, ECX, EDX, rsvd}.
  const page = Buffer.alloc(PAGE);
  const list = entries.slice(0, 64);
  page.writeUInt32LE(list.length, 0);
  list.forEach((e, i) => {
    const o = 0x10 + i * 0x30;
    page.writeUInt32LE(e.function, o);
    page.writeUInt32LE(e.index, o + 4);
    page.writeBigUInt64LE(e.function === 0xd && e.index <= 1 ? 1n : 0n, o + 8); // XCR0_IN: x87
    page.writeUInt32LE(e.eax >>> 0, o + 0x18);
    page.writeUInt32LE(e.ebx >>> 0, o + 0x1c);
    page.writeUInt32LE((e.function === 1 && badEcx !== undefined ? badEcx : e.ecx) >>> 0, o + 0x20);
    page.writeUInt32LE(e.edx >>> 0, o + 0x24);
  });
  return page;
}

/** An SNP guest whose launch finished: its VM, vCPUs and memory (RAM at 0, the flash below 4 GiB). */
export interface SnpFirmwareGuest {
  vm: Vm;
  vcpus: Vcpu[];
  /** The VMM's (shared) memory of guest RAM from GPA 0, and of the flash. */
  ram: GuestMemory;
  flash: GuestMemory;
  flashGpa: number;
  /** RDX of the vCPUs: the CPUID signature `sev snp measure --vcpu-sig` needs. */
  signature: number;
  close(): void;
}

/** Launches the firmware image as an SNP guest on `kvm` and `platform` (both stay the caller's). */
export async function launchSnpFirmware(kvm: Kvm, platform: SevPlatform, args: SnpVmmArgs): Promise<SnpFirmwareGuest> {
  const read = (f: string | Uint8Array) => (typeof f === 'string' ? fs.readFileSync(f) : f);
  const ovmf = OvmfImage.parse(read(args.ovmf));
  const svsm = args.svsm ? OvmfImage.parse(fs.readFileSync(args.svsm)) : undefined;
  const ovmfGpa = ovmf.gpa();
  const svsmGpa = svsm ? svsm.gpa(ovmfGpa - (args.varsSize ?? 0)) : ovmfGpa;
  const launched = svsm ?? ovmf; // whose SEV metadata sections are launched
  const vm = kvm.createVm({ type: 'snp' });
  const ramTop = Math.ceil(Math.max(MIB2, ...launched.sevMetadata.map((s) => s.gpa + s.size)) / MIB2) * MIB2;
  const flashGpa = Math.min(ovmfGpa, svsmGpa);
  const flashSize = 0x1_0000_0000 - flashGpa;
  const ram = GuestMemory.create(ramTop);
  const flash = GuestMemory.create(flashSize);
  const gmems = [vm.createGuestMemfd({ size: ramTop }), vm.createGuestMemfd({ size: flashSize })];
  const vcpus: Vcpu[] = [];
  const close = () => {
    vm.close();
    for (const g of gmems) g.close();
    ram.release();
    flash.release();
  };
  try {
    vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory: ram, guestMemfd: gmems[0] });
    vm.setUserMemoryRegion2({ slot: 1, guestPhysAddr: flashGpa, memory: flash, guestMemfd: gmems[1] });
    vm.setMemoryAttributes({ address: 0, size: ramTop, private: true });
    vm.setMemoryAttributes({ address: flashGpa, size: flashSize, private: true });

    const launch = await SnpLaunch.init(vm, platform, { requestCertificates: args.requestCertificates });
    const cpuid = kvm.supportedCpuid();
    const signature = cpuid.find((e) => e.function === 1)!.eax >>> 0;
    const reset = ovmf.sevEsResetAddress();
    for (let i = 0; i < args.vcpus; i++) {
      const vcpu = vm.createVcpu(i);
      vcpus.push(vcpu);
      vcpu.setCpuid(cpuid);
      vcpu.setRegs({ rdx: signature });
      // QEMU's reset state: accessed code/data segments and a busy 32-bit TSS; APs at the reset block.
      const s = vcpu.getSregs();
      const cs = i === 0 ? { ...s.cs, type: 0xb } : { ...s.cs, type: 0xb, base: BigInt((reset & 0xffff0000) >>> 0) };
      vcpu.setSregs({ cs, ss: { ...s.ss, type: 0x3 }, tr: { ...s.tr, type: 0xb } });
      if (i > 0) vcpu.setRegs({ rip: reset & 0xffff });
      if (svsm) {
        // Flat 32-bit protected mode at the SVSM's entry, x87 control word 0 (MXCSR stays 0x1F80).
        const flat = (selector: number, type: number) => ({ selector, base: 0n, limit: 0xffffffff, type, s: 1, present: 1, db: 1, g: 1, dpl: 0, l: 0, avl: 0 });
        vcpu.setSregs({ cs: flat(8, 0xb), ds: flat(16, 3), es: flat(16, 3), fs: flat(16, 3), ss: flat(16, 3), cr0: 0x11n });
        vcpu.setRegs({ rip: svsmEntry(svsm, svsmGpa) });
        vcpu.setFpu({ fcw: 0 });
      }
    }

    const started = await launch.start({ policy: BigInt(args.policy ?? '0x30000') });
    for (const [image, gpa] of svsm ? [[ovmf, ovmfGpa], [svsm, svsmGpa]] as const : [[ovmf, ovmfGpa]] as const) {
      const length = Math.ceil(image.data.length / PAGE) * PAGE;
      flash.bytes(gpa - flashGpa, length).set(image.data);
      await started.update({ guestPhysAddr: gpa, length, type: 'normal', source: { memory: flash, offset: gpa - flashGpa } });
    }
    for (const [index, s] of launched.sevMetadata.entries()) {
      if (args.omitSections?.includes(index)) continue;
      const at = { guestPhysAddr: s.gpa, length: s.size };
      const src = { memory: ram, offset: s.gpa };
      switch (s.type) {
        case 'snpSecMemory':
        case 'svsmCaa':
          await started.update({ ...at, type: 'zero' });
          break;
        case 'snpSecrets':
          await started.update({ ...at, type: 'secrets', source: src });
          break;
        case 'cpuid': {
          ram.bytes(s.gpa, PAGE).set(cpuidPage(cpuid, args.badCpuidEcx));
          try {
            await started.update({ ...at, type: 'cpuid', source: src });
          } catch (e) {
            // The firmware's accepted values, copied back into the source page by the kernel.
            const leaf1 = cpuid.findIndex((c) => c.function === 1);
            throw Object.assign(e as Error, { cpuidEcxBack: Buffer.from(ram.bytes(s.gpa, PAGE)).readUInt32LE(0x10 + leaf1 * 0x30 + 0x20) });
          }
          break;
        }
        case 'snpKernelHashes': {
          if (args.kernel === undefined) {
            await started.update({ ...at, type: 'zero' });
            break;
          }
          const table = buildSevHashesTable({
            kernel: fs.readFileSync(args.kernel),
            initrd: args.initrd ? fs.readFileSync(args.initrd) : undefined,
            cmdline: args.append,
          });
          ram.bytes(s.gpa, PAGE).fill(0).set(table, ovmf.sevHashTableArea()!.gpa % PAGE);
          await started.update({ ...at, type: 'normal', source: src });
          break;
        }
      }
    }
    const b64 = (f?: string) => (f ? Buffer.from(fs.readFileSync(f, 'utf8').trim(), 'base64') : undefined);
    await started.finish({
      idBlock: b64(args.idBlock),
      idAuth: b64(args.idAuth),
      authorKey: args.idBlock !== undefined,
      hostData: args.hostData ? Buffer.from(args.hostData, 'hex') : undefined,
    });
    return { vm, vcpus, ram, flash, flashGpa, signature, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** Launches, then closes everything: what the launch tests need. */
export async function runSnpVmm(args: SnpVmmArgs): Promise<SnpVmmResult> {
  const platform = SevPlatform.open();
  const kvm = Kvm.open();
  try {
    const guest = await launchSnpFirmware(kvm, platform, args);
    guest.close();
    return { ok: true, signature: guest.signature };
  } catch (e) {
    const back = (e as { cpuidEcxBack?: number }).cpuidEcxBack;
    return { ok: false, ...describe(e), ...(back === undefined ? {} : { cpuidEcxBack: back }) };
  } finally {
    kvm.close();
    platform.close();
  }
}

function describe(e: unknown): { error: string; firmwareStatus?: string } {
  if (e instanceof SevError) return { error: e.message, firmwareStatus: e.firmwareStatusName };
  return { error: String(e) };
}

