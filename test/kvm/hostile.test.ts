// Hostile arguments at the KVM and launch API: typed errors before any ioctl.
import * as assert from 'node:assert/strict';

import { SevError } from '../../lib/errors';
import { GuestMemory, Kvm } from '../../lib/kvm';
import { SevLaunch } from '../../lib/launch';
import { requireKvm } from './guest';

const typed = (e: unknown) => e instanceof SevError;

describe('kvm: hostile arguments', function () {
  before(function () {
    requireKvm(this);
  });

  it('null options and wrong objects', async () => {
    const kvm = Kvm.open();
    const vm = kvm.createVm(null);
    const memory = GuestMemory.create(0x10000);
    try {
      assert.throws(() => vm.sevInit2Sync(3, null), typed); // EBADF/ENOTTY from the kernel: typed
      await assert.rejects(SevLaunch.init(null as never, { fd: 3 } as never), typed);
      await assert.rejects(SevLaunch.init(vm, null as never), typed);
      await assert.rejects(memory.readFile(999999, { length: 16 }), typed);
      assert.throws(() => memory.readFileSync(999999), typed);
      assert.throws(() => vm.createVcpu(0).setCpuid(new Array(300).fill({ function: 0, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 })), typed);
    } finally {
      vm.close();
      memory.release();
      kvm.close();
    }
  });
});
