// The kernel's and firmware's rules for an SNP launch, exercised in one fresh emulator by
// snp-launch.test.ts (`node snp-rules.js` prints one JSON object of observations): commands out
// of order, legacy commands on an SNP VM, ranges that are not private or not in a guest_memfd
// slot, pages launched twice, a range running past its slot (partial progress), and the
// platform's SNP guest count.
import { SevArgumentError, SevError } from '../../lib/errors';
import { GuestMemory, type GuestMemfd, Kvm, type Vm } from '../../lib/kvm';

import { SevPlatform } from '../../lib/platform';

const SLOT = 0x10000; // 16 pages of guest_memfd at GPA 0
const PAGE = 4096;

/** 'ok', the errno name and firmware status of a SevError, or 'argument: <message>'. */
async function outcome(f: () => unknown): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    if (e instanceof SevArgumentError) return `argument: ${e.message}`;
    if (e instanceof SevError) return [e.code, e.firmwareStatusName].filter(Boolean).join(' ');
    return `unexpected: ${String(e)}`;
  }
}

async function main(): Promise<Record<string, unknown>> {
  const seen: Record<string, unknown> = {};
  const platform = SevPlatform.open();
  const kvm = Kvm.open();
  seen.vmTypes = kvm.supportedVmTypes();
  const memory = GuestMemory.create(2 * SLOT);
  const objects: Array<Vm | GuestMemfd> = [];
  const newVm = () => {
    const vm = kvm.createVm({ type: 'snp' });
    const gmem = vm.createGuestMemfd({ size: SLOT });
    objects.push(vm, gmem);
    vm.setUserMemoryRegion2({ slot: 0, guestPhysAddr: 0, memory, size: SLOT, guestMemfd: gmem });
    vm.setMemoryAttributes({ address: 0, size: SLOT - 2 * PAGE, private: true }); // the last 2 pages stay shared
    return { vm, gmem };
  };
  try {
    const { vm, gmem } = newVm();
    const src = { memory, offset: 0 };
    seen.updateBeforeInit = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: PAGE, type: 'normal', source: src }));
    seen.init2GhcbV1 = await outcome(() => vm.sevInit2(platform, { ghcbVersion: 1 }));
    await vm.sevInit2(platform, {});
    seen.legacyCommand = await outcome(() => vm.launchStart(platform, { policy: 0 }));
    seen.updateBeforeStart = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: PAGE, type: 'normal', source: src }));
    seen.finishBeforeStart = await outcome(() => vm.snpLaunchFinish(platform, {}));
    seen.policyWithoutMbo = await outcome(() => vm.snpLaunchStart(platform, { policy: 0x10000 }));
    seen.guestsBefore = (await platform.snpStatus()).guestCount;
    await vm.snpLaunchStart(platform, { policy: 0x30000n });
    seen.guestsDuring = (await platform.snpStatus()).guestCount;
    seen.startTwice = await outcome(() => vm.snpLaunchStart(platform, { policy: 0x30000n }));
    seen.unalignedLength = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: 100, type: 'normal', source: src }));
    seen.zeroWithSource = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: PAGE, type: 'zero', source: src }));
    seen.unknownType = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: PAGE, type: 'vmsa' as 'normal', source: src }));
    seen.outsideGmem = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: SLOT, length: PAGE, type: 'zero' }));
    seen.sharedPage = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: SLOT - PAGE, length: PAGE, type: 'zero' }));
    seen.first = await vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: 2 * PAGE, type: 'normal', source: src });
    seen.twice = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: PAGE, length: PAGE, type: 'normal', source: src }));
    // Pages 2..13 are private, 14 and 15 shared: the kernel stops at page 14 with success.
    seen.partial = await vm.snpLaunchUpdate(platform, { guestPhysAddr: 2 * PAGE, length: 14 * PAGE, type: 'zero' });
    seen.finishWithoutVcpus = await outcome(() => vm.snpLaunchFinish(platform, {}));
    vm.createVcpu(0);
    seen.finish = await outcome(() => vm.snpLaunchFinish(platform, {}));
    seen.updateAfterFinish = await outcome(() => vm.snpLaunchUpdate(platform, { guestPhysAddr: 0, length: PAGE, type: 'zero' }));
    vm.close();
    seen.guestsWhileGmemOpen = (await platform.snpStatus()).guestCount; // a guest_memfd keeps its VM
    gmem.close();
    seen.guestsAfterClose = (await platform.snpStatus()).guestCount;
    const { vm: late } = newVm();
    await late.sevInit2(platform, {});
    late.createVcpu(0);
    seen.reqCertsAfterVcpu = await outcome(() => late.snpEnableReqCerts(platform));
    return seen;
  } finally {
    for (const o of objects) if (!o.closed) o.close();
    memory.release();
    kvm.close();
    platform.close();
  }
}

if (require.main === module) {
  main().then(
    (r) => console.log(JSON.stringify(r)),
    (e) => {
      console.log(JSON.stringify({ error: String(e), stack: (e as Error).stack }));
      process.exitCode = 1;
    },
  );
}
