// GuestMemfd: a guest_memfd (KVM_CREATE_GUEST_MEMFD, virt/kvm/guest_memfd.c) — the fd that holds a
// VM's private memory. User space cannot read or write it; memslots made with
// Vm#setUserMemoryRegion2({ guestMemfd }) take their private pages from it.
import { SevArgumentError, SevClosedError, SevError } from '../errors';
import { PAGE_SIZE } from './constants';
import type { NativeGuestMemfd } from './native';
import { aligned, integer } from './validate';

export class GuestMemfd {
  /** Bytes (the file's size; fixed). */
  readonly size: number;
  /** kvm_create_guest_memfd.flags it was made with (GUEST_MEMFD_FLAG). */
  readonly flags: number;
  /** @internal */
  readonly native: NativeGuestMemfd;
  /** @internal The Vm it belongs to (a guest_memfd binds only to its own VM's memslots). */
  readonly owner: object;

  /** @internal Created by Vm#createGuestMemfd. */
  constructor(native: NativeGuestMemfd, owner: object) {
    this.native = native;
    this.owner = owner;
    this.size = native.size;
    this.flags = native.flags;
  }

  /** The fd number (-1 once closed). */
  get fd(): number {
    return this.native.fd;
  }

  get closed(): boolean {
    return this.native.closed;
  }

  /** @internal The native object, or SevClosedError. */
  live(command: string): NativeGuestMemfd {
    if (this.native.closed) throw new SevClosedError(command, 'GuestMemfd');
    return this.native;
  }

  /**
   * fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE): frees [offset, offset + length) of the
   * guest_memfd (kvm_gmem_punch_hole); the guest finds those pages zeroed when it next touches
   * them. Page-aligned, inside the file.
   */
  punchHole(offset: number, length: number): void {
    this.fallocate('fallocate(PUNCH_HOLE)', true, offset, length);
  }

  /** fallocate(FALLOC_FL_KEEP_SIZE): allocates [offset, offset + length) ahead of use (kvm_gmem_allocate). */
  allocate(offset: number, length: number): void {
    this.fallocate('fallocate', false, offset, length);
  }

  /**
   * Drops this object's hold on the fd. Memslots bound to it keep it open (the Vm holds it) until
   * they are removed, so closing never takes private memory away from a running guest. Idempotent.
   */
  close(): void {
    this.native.close();
  }

  private fallocate(command: string, punch: boolean, offset: number, length: number): void {
    const n = this.live(command);
    integer(command, 'offset', offset);
    integer(command, 'length', length, 1);
    aligned(command, 'offset', offset, PAGE_SIZE);
    aligned(command, 'length', length, PAGE_SIZE);
    if (offset + length > this.size) {
      throw new SevArgumentError(command, `range 0x${offset.toString(16)}+0x${length.toString(16)} is outside the guest_memfd (0x${this.size.toString(16)} bytes)`);
    }
    const o = n.fallocate(punch, BigInt(offset), BigInt(length));
    if (o.errno !== 0) throw SevError.fromIoctl(command, o.errno, 0);
  }
}
