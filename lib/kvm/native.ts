// Types of the addon's KVM objects (native/addon/kvm_*.cc). Only lib/kvm talks to them; users
// get the classes in this directory. Every ioctl method returns {errno, fwError, ...} and, when
// its last argument `async` is true, a Promise of it (the ioctl runs on a libuv worker thread).
import { native, type NativeOutcome } from '../native';

type Maybe<T, A extends boolean> = A extends true ? Promise<T> : T;

export interface NativeValue extends NativeOutcome {
  value: number;
}

export interface NativeCpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

export interface NativeKvm {
  readonly fd: number;
  readonly closed: boolean;
  apiVersion(): NativeValue;
  checkExtension(cap: number): NativeValue;
  vcpuMmapSize(): NativeValue;
  supportedCpuid(): NativeOutcome & { entries: NativeCpuidEntry[] };
  createVm(type: number): NativeOutcome & { vm?: NativeVm };
  close(): void;
}

export interface NativeGuestMemory {
  readonly buffer: ArrayBuffer | undefined;
  readonly size: number;
  readonly address: bigint;
  readonly released: boolean;
  readFile<A extends boolean>(
    fd: number,
    fileOffset: number,
    memOffset: number,
    length: number,
    async: A,
  ): Maybe<NativeOutcome & { bytesRead: number }, A>;
  release(): void;
}

export interface NativeGuestMemfd {
  readonly fd: number;
  readonly size: number;
  readonly flags: number;
  readonly closed: boolean;
  fallocate(punchHole: boolean, offset: bigint, length: bigint): NativeOutcome;
  close(): void;
}

export interface NativeVm {
  readonly fd: number;
  readonly closed: boolean;
  readonly mappedSlots: number[];
  checkExtension(cap: number): NativeValue;
  enableCap(cap: number, flags: number, args: bigint[]): NativeOutcome;
  setUserMemoryRegion(
    slot: number,
    flags: number,
    guestPhysAddr: bigint,
    memory: NativeGuestMemory | null,
    memoryOffset: number,
    size: number,
  ): NativeOutcome;
  setUserMemoryRegion2(
    slot: number,
    flags: number,
    guestPhysAddr: bigint,
    memory: NativeGuestMemory | null,
    memoryOffset: number,
    size: number,
    guestMemfd: NativeGuestMemfd | null,
    guestMemfdOffset: bigint,
  ): NativeOutcome;
  setMemoryAttributes(address: bigint, size: bigint, attributes: bigint, flags: bigint): NativeOutcome;
  createGuestMemfd(size: bigint, flags: bigint): NativeOutcome & { guestMemfd?: NativeGuestMemfd };
  setTssAddr(addr: bigint): NativeOutcome;
  setIdentityMapAddr(addr: bigint): NativeOutcome;
  createVcpu(id: number): NativeOutcome & { vcpu?: NativeVcpu };
  registerEncRegion<A extends boolean>(m: NativeGuestMemory, offset: number, size: number, async: A): Maybe<NativeOutcome, A>;
  unregisterEncRegion<A extends boolean>(m: NativeGuestMemory, offset: number, size: number, async: A): Maybe<NativeOutcome, A>;
  sevInit<A extends boolean>(sevFd: number, async: A): Maybe<NativeOutcome, A>;
  sevEsInit<A extends boolean>(sevFd: number, async: A): Maybe<NativeOutcome, A>;
  sevInit2<A extends boolean>(
    sevFd: number,
    vmsaFeatures: bigint,
    flags: number,
    ghcbVersion: number,
    async: A,
  ): Maybe<NativeOutcome, A>;
  launchStart<A extends boolean>(
    sevFd: number,
    policy: number,
    handle: number,
    dhCert: Uint8Array | null,
    session: Uint8Array | null,
    async: A,
  ): Maybe<NativeOutcome & { handle: number; policy: number }, A>;
  launchUpdateData<A extends boolean>(
    sevFd: number,
    m: NativeGuestMemory,
    offset: number,
    length: number,
    async: A,
  ): Maybe<NativeOutcome, A>;
  launchUpdateDataBatch<A extends boolean>(
    sevFd: number,
    m: NativeGuestMemory,
    ranges: Float64Array,
    control: Int32Array | null,
    async: A,
  ): Maybe<NativeOutcome & { completed: number; cancelled: boolean }, A>;
  launchUpdateVmsa<A extends boolean>(sevFd: number, async: A): Maybe<NativeOutcome, A>;
  launchMeasure<A extends boolean>(sevFd: number, buf: Uint8Array | null, async: A): Maybe<NativeOutcome & { length: number }, A>;
  launchSecret<A extends boolean>(
    sevFd: number,
    header: Uint8Array,
    m: NativeGuestMemory,
    guestOffset: number,
    guestLength: number,
    transport: Uint8Array,
    async: A,
  ): Maybe<NativeOutcome, A>;
  launchFinish<A extends boolean>(sevFd: number, async: A): Maybe<NativeOutcome, A>;
  guestStatus<A extends boolean>(
    sevFd: number,
    async: A,
  ): Maybe<NativeOutcome & { handle: number; policy: number; state: number }, A>;
  dbgDecrypt<A extends boolean>(sevFd: number, m: NativeGuestMemory, src: number, dst: Uint8Array, async: A): Maybe<NativeOutcome, A>;
  dbgEncrypt<A extends boolean>(sevFd: number, src: Uint8Array, m: NativeGuestMemory, dst: number, async: A): Maybe<NativeOutcome, A>;
  getAttestationReport<A extends boolean>(
    sevFd: number,
    mnonce: Uint8Array,
    buf: Uint8Array | null,
    async: A,
  ): Maybe<NativeOutcome & { length: number }, A>;
  snpLaunchStart<A extends boolean>(sevFd: number, policy: bigint, gosvw: Uint8Array | null, flags: number, async: A): Maybe<NativeOutcome, A>;
  snpLaunchUpdate<A extends boolean>(
    sevFd: number,
    gfnStart: number,
    m: NativeGuestMemory | null,
    offset: number,
    length: number,
    type: number,
    flags: number,
    async: A,
  ): Maybe<NativeOutcome & { gfnStart: number; length: number; offset: number }, A>;
  snpLaunchFinish<A extends boolean>(
    sevFd: number,
    idBlock: Uint8Array | null,
    idAuth: Uint8Array | null,
    authKeyEn: boolean,
    vcekDisabled: boolean,
    hostData: Uint8Array | null,
    flags: number,
    async: A,
  ): Maybe<NativeOutcome, A>;
  snpEnableReqCerts<A extends boolean>(sevFd: number, async: A): Maybe<NativeOutcome, A>;
  close(): void;
}

export interface NativeRunOutcome extends NativeOutcome {
  exitReason: number;
  direction?: number;
  size?: number;
  port?: number;
  count?: number;
  data?: Buffer | bigint[];
  physAddr?: bigint;
  length?: number;
  isWrite?: boolean;
  hardwareEntryFailureReason?: bigint;
  cpu?: number;
  hardwareExitReason?: bigint;
  exception?: number;
  errorCode?: number;
  suberror?: number;
  type?: number;
  nr?: bigint;
  args?: bigint[];
  longMode?: number;
  flags?: bigint;
  gpa?: bigint;
  memorySize?: bigint;
  npages?: bigint;
}

export interface NativeVcpu {
  readonly fd: number;
  readonly id: number;
  readonly closed: boolean;
  readonly running: boolean;
  getRegs(): NativeOutcome & { regs: Record<string, bigint> };
  setRegs(regs: Record<string, bigint>): NativeOutcome;
  getSregs(): NativeOutcome & { sregs: unknown };
  setSregs(sregs: unknown): NativeOutcome;
  getFpu(): NativeOutcome & { fpu: unknown };
  setFpu(fpu: unknown): NativeOutcome;
  setCpuid2(entries: NativeCpuidEntry[]): NativeOutcome;
  run<A extends boolean>(async: A): Maybe<NativeRunOutcome, A>;
  setIoData(data: Uint8Array): void;
  setMmioData(data: Uint8Array): void;
  setHypercallResult(ret: bigint): void;
  setSnpReqCertsResult(ret: bigint, npages: bigint): void;
  kick(): void;
  close(): void;
}

export interface NativeKvmStats {
  mappings: number;
  mappedBytes: number;
  fds: number;
}

export interface NativeKvmAddon {
  Kvm: new (path: string) => NativeKvm;
  GuestMemory: new (size: number, hugetlb: boolean, thp: boolean) => NativeGuestMemory;
  kvmStats(): NativeKvmStats;
}

export const kvmNative = native as unknown as NativeKvmAddon;
