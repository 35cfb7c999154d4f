// The SEV-ES VMSA (VM save area, AMD APM vol. 2 Table B-4 "VMSA Layout, State Save Area for
// SEV-ES"): the initial register state of a vCPU that LAUNCH_UPDATE_VMSA encrypts and adds to
// the launch digest, one 4096-byte page per vCPU.
//
// The field list below follows the layout sevctl and the virtee/sev crate (`sev::vmsa::Vmsa`)
// use for their VMSA files and for `sevctl vmsa show`, so files and `show` output are
// interchangeable with sevctl. Areas the APM defines that this layout keeps as `reserved_*`
// (e.g. SEV_FEATURES at 0x3B0, VMPL at 0xCA) have extra named accessors.
import { SevArgumentError } from '../errors';

/** A segment register in the VMCB layout: selector, attributes, limit, base (16 bytes). */
export interface VmcbSegment {
  selector: number;
  attrib: number;
  limit: number;
  base: bigint;
}

export const VMSA_PAGE_SIZE = 4096;

type FieldKind = 'segment' | 'u8' | 'u32' | 'u64' | 'bytes';
interface FieldSpec {
  name: string;
  offset: number;
  kind: FieldKind;
  /** Length for 'bytes'. */
  length?: number;
}

const SEGMENTS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs', 'gdtr', 'ldtr', 'idtr', 'tr'] as const;
export type SegmentName = (typeof SEGMENTS)[number];

const U64_REGISTERS = [
  'efer', 'xss', 'cr4', 'cr3', 'cr0', 'dr7', 'dr6', 'rflags', 'rip', 'rsp', 'rax', 'star', 'lstar', 'cstar', 'sfmask',
  'kernel_gs_base', 'sysenter_cs', 'sysenter_esp', 'sysenter_eip', 'cr2', 'g_pat', 'dbgctl', 'br_from', 'br_to',
  'last_excp_from', 'last_excp_to', 'reserved_8', 'rcx', 'rdx', 'rbx', 'reserved_9', 'rbp', 'rsi', 'rdi',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15', 'sw_exit_code', 'sw_exit_info_1', 'sw_exit_info_2',
  'sw_scratch', 'xcr0', 'x87_state_gpa',
  // APM names for fields inside the reserved_11 area (SEV-ES/SNP guest state).
  'sev_features', 'vintr_ctrl', 'guest_exit_code', 'virtual_tom', 'tlb_id', 'pcpu_id', 'event_inj',
] as const;
/** A 64-bit register or MSR field of the VMSA. */
export type VmsaRegister = (typeof U64_REGISTERS)[number];

/** sevctl's field order, which is also the byte layout (packed, little-endian). */
function sevctlLayout(): FieldSpec[] {
  const fields: FieldSpec[] = [];
  let offset = 0;
  const add = (name: string, kind: FieldKind, length?: number) => {
    fields.push({ name, offset, kind, length });
    offset += kind === 'segment' ? 16 : kind === 'u8' ? 1 : kind === 'u32' ? 4 : kind === 'u64' ? 8 : length!;
  };
  for (const s of SEGMENTS) add(s, 'segment');
  add('reserved_1', 'bytes', 43);
  add('cpl', 'u8');
  add('reserved_2', 'bytes', 4);
  add('efer', 'u64'); // 0xD0
  add('reserved_3', 'bytes', 104);
  for (const r of ['xss', 'cr4', 'cr3', 'cr0', 'dr7', 'dr6', 'rflags', 'rip']) add(r, 'u64'); // 0x140..
  add('reserved_4', 'bytes', 88);
  add('rsp', 'u64'); // 0x1D8
  add('reserved_5', 'bytes', 24);
  for (const r of ['rax', 'star', 'lstar', 'cstar', 'sfmask', 'kernel_gs_base', 'sysenter_cs', 'sysenter_esp', 'sysenter_eip', 'cr2']) add(r, 'u64');
  add('reserved_6', 'bytes', 32);
  for (const r of ['g_pat', 'dbgctl', 'br_from', 'br_to', 'last_excp_from', 'last_excp_to']) add(r, 'u64'); // 0x268..
  add('reserved_7', 'bytes', 72);
  add('spec_ctrl', 'u32'); // 0x2E0
  add('reserved_7b', 'bytes', 4);
  add('pkru', 'u32'); // 0x2E8
  add('reserved_7a', 'bytes', 20);
  for (const r of ['reserved_8', 'rcx', 'rdx', 'rbx', 'reserved_9', 'rbp', 'rsi', 'rdi']) add(r, 'u64'); // 0x300..
  for (let i = 8; i <= 15; i++) add(`r${i}`, 'u64');
  add('reserved_10', 'bytes', 16);
  for (const r of ['sw_exit_code', 'sw_exit_info_1', 'sw_exit_info_2', 'sw_scratch']) add(r, 'u64'); // 0x390..
  add('reserved_11', 'bytes', 56); // 0x3B0: SEV_FEATURES .. EVENT_INJ in the APM
  add('xcr0', 'u64'); // 0x3E8
  add('valid_bitmap', 'bytes', 16);
  add('x87_state_gpa', 'u64'); // 0x400
  return fields;
}

/** The fields in file order, as `sevctl vmsa show` prints them. */
export const VMSA_FIELDS: readonly FieldSpec[] = Object.freeze(sevctlLayout());

/** Offsets of named registers, including APM fields inside reserved areas. */
const REGISTER_OFFSETS: Readonly<Record<VmsaRegister, number>> = (() => {
  const map: Record<string, number> = {};
  for (const f of VMSA_FIELDS) if (f.kind === 'u64') map[f.name] = f.offset;
  Object.assign(map, {
    sev_features: 0x3b0, vintr_ctrl: 0x3b8, guest_exit_code: 0x3c0, virtual_tom: 0x3c8,
    tlb_id: 0x3d0, pcpu_id: 0x3d8, event_inj: 0x3e0,
  });
  return map as Record<VmsaRegister, number>;
})();

const SEGMENT_OFFSETS = Object.fromEntries(SEGMENTS.map((s, i) => [s, i * 16])) as Record<SegmentName, number>;

/** The offset of a register by name; an unknown name (from JS or a CLI) is an argument error. */
function registerOffset(reg: string): number {
  if (!Vmsa.isRegister(reg)) throw new SevArgumentError('vmsa', `unknown VMSA register '${reg}'`);
  return REGISTER_OFFSETS[reg];
}

/** A typed view over one 4096-byte VMSA page. */
export class Vmsa {
  /** The page; fields not named by the layout stay as they are. */
  readonly page: Buffer;

  /** A zeroed page, or a copy of `page` (which must be 4096 bytes). */
  constructor(page?: Uint8Array) {
    if (page !== undefined && !(page instanceof Uint8Array)) {
      throw new SevArgumentError('vmsa', `a VMSA page is a ${VMSA_PAGE_SIZE}-byte Buffer or Uint8Array, got ${typeof page}`);
    }
    if (page !== undefined && page.length !== VMSA_PAGE_SIZE) {
      throw new SevArgumentError('vmsa', `a VMSA page is ${VMSA_PAGE_SIZE} bytes, got ${page.length}`);
    }
    this.page = page ? Buffer.from(page) : Buffer.alloc(VMSA_PAGE_SIZE);
  }

  static isRegister(name: string): name is VmsaRegister {
    return Object.prototype.hasOwnProperty.call(REGISTER_OFFSETS, name);
  }

  static isSegment(name: string): name is SegmentName {
    return (SEGMENTS as readonly string[]).includes(name);
  }

  get(reg: VmsaRegister): bigint {
    return this.page.readBigUInt64LE(registerOffset(reg));
  }

  set(reg: VmsaRegister, value: bigint | number): this {
    this.page.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)), registerOffset(reg));
    return this;
  }

  segment(name: SegmentName): VmcbSegment {
    const o = SEGMENT_OFFSETS[name];
    return {
      selector: this.page.readUInt16LE(o),
      attrib: this.page.readUInt16LE(o + 2),
      limit: this.page.readUInt32LE(o + 4),
      base: this.page.readBigUInt64LE(o + 8),
    };
  }

  setSegment(name: SegmentName, value: Partial<VmcbSegment>): this {
    const o = SEGMENT_OFFSETS[name];
    const s = { ...this.segment(name), ...value };
    this.page.writeUInt16LE(s.selector, o);
    this.page.writeUInt16LE(s.attrib, o + 2);
    this.page.writeUInt32LE(s.limit, o + 4);
    this.page.writeBigUInt64LE(BigInt.asUintN(64, BigInt(s.base)), o + 8);
    return this;
  }

  /** Current privilege level (0xCB) and VMPL (0xCA, SNP). */
  get cpl(): number {
    return this.page[0xcb];
  }
  set cpl(v: number) {
    this.page[0xcb] = v;
  }
  get vmpl(): number {
    return this.page[0xca];
  }
  set vmpl(v: number) {
    this.page[0xca] = v;
  }
  get specCtrl(): number {
    return this.page.readUInt32LE(0x2e0);
  }
  set specCtrl(v: number) {
    this.page.writeUInt32LE(v >>> 0, 0x2e0);
  }
  get pkru(): number {
    return this.page.readUInt32LE(0x2e8);
  }
  set pkru(v: number) {
    this.page.writeUInt32LE(v >>> 0, 0x2e8);
  }

  /** MXCSR (0x408) and the x87 control word FCW (0x410): the FPU state KVM_SEV_INIT2 sets. */
  fpuControl(): { mxcsr: number; fcw: number } {
    return { mxcsr: this.page.readUInt32LE(0x408), fcw: this.page.readUInt16LE(0x410) };
  }
  setFpuControl(mxcsr: number, fcw: number): this {
    this.page.writeUInt32LE(mxcsr >>> 0, 0x408);
    this.page.writeUInt16LE(fcw & 0xffff, 0x410);
    return this;
  }

  /** A copy of the page. */
  toBuffer(): Buffer {
    return Buffer.from(this.page);
  }

  /**
   * The fields in layout order with their values (u64 as bigint, byte areas as number arrays):
   * the structure `sevctl vmsa show` prints.
   */
  fields(): Array<[string, number | bigint | number[] | VmcbSegment]> {
    return VMSA_FIELDS.map((f) => {
      switch (f.kind) {
        case 'segment':
          return [f.name, this.segment(f.name as SegmentName)];
        case 'u8':
          return [f.name, this.page[f.offset]];
        case 'u32':
          return [f.name, this.page.readUInt32LE(f.offset)];
        case 'u64':
          return [f.name, this.page.readBigUInt64LE(f.offset)];
        default:
          return [f.name, [...this.page.subarray(f.offset, f.offset + f.length!)]];
      }
    });
  }

  /**
   * Pretty JSON exactly as `sevctl vmsa show` prints it (serde_json pretty: two-space indent,
   * one array element per line, u64 values as exact integers).
   */
  toSevctlJson(): string {
    const lines: string[] = ['{'];
    const fields = this.fields();
    fields.forEach(([name, value], i) => {
      const comma = i < fields.length - 1 ? ',' : '';
      if (Array.isArray(value)) {
        lines.push(`  "${name}": [`, ...value.map((v, j) => `    ${v}${j < value.length - 1 ? ',' : ''}`), `  ]${comma}`);
      } else if (typeof value === 'object') {
        lines.push(`  "${name}": {`, `    "selector": ${value.selector},`, `    "attrib": ${value.attrib},`,
          `    "limit": ${value.limit},`, `    "base": ${value.base}`, `  }${comma}`);
      } else {
        lines.push(`  "${name}": ${value}${comma}`);
      }
    });
    lines.push('}');
    return lines.join('\n');
  }
}
