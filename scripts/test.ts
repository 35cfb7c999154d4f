// `npm test`: every suite under the emulator (`sev-emu run --temp-state -- mocha`), on the KVM
// `--kvm auto` picks — the host's /dev/kvm where it is usable, else the software KVM. Where the
// host's KVM was used, the KVM and launch suites run a second time on the software KVM, so both
// machines are tested wherever both exist. Extra arguments go to mocha (e.g. a spec or --grep).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const SEV_EMU = path.join(ROOT, 'bin', 'sev-emu.js');
const MOCHA = path.join(ROOT, 'node_modules', '.bin', 'mocha');

function hostKvmUsable(): boolean {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const r = spawnSync(process.execPath, [SEV_EMU, 'info', '--json'], { encoding: 'utf8', env });
  try {
    return (JSON.parse(r.stdout) as { hostKvm: string }).hostKvm === 'usable';
  } catch {
    return false;
  }
}

function mocha(emuOptions: string[], args: string[]): number {
  const r = spawnSync(process.execPath, [SEV_EMU, 'run', '--temp-state', ...emuOptions, '--', MOCHA, ...args], { stdio: 'inherit', cwd: ROOT });
  return r.status ?? 1;
}

const extra = process.argv.slice(2);
// The emulated /dev/sev is root-only, as the kernel makes it; for another user the suites get it
// as a udev rule would give it to a group they are in.
const deviceAccess = process.geteuid?.() === 0 ? [] : ['--device-mode', '0666'];
if (deviceAccess.length) console.log('Not root: the emulated /dev/sev is opened up (sev-emu run --device-mode 0666); the kernel-conformance suite needs root and skips.');
// The SNP guest suite runs in its own pass below (inside the emulated guest), not skipped here.
// (mocha matches --ignore against the spec globs, relative to the project root.)
const GUEST_SPEC = 'dist/test/snp/guest-emu.test.js';
let status = mocha(deviceAccess, extra.length === 0 ? ['--ignore', GUEST_SPEC] : extra);
if (extra.length === 0 && hostKvmUsable()) {
  console.log('\nThe KVM and launch suites again, on the software KVM (sev-emu run --kvm soft):');
  const specs = ['dist/test/kvm/**/*.test.js', 'dist/test/launch/**/*.test.js'].map((s) => path.join(ROOT, s));
  // The SNP launch suites start software machines of their own (SNP VMs are the software KVM's):
  // they ran once already. --no-config: the config's spec (every suite) would be added to these.
  const snpSuites = path.join(ROOT, 'dist/test/launch/snp-*.test.js');
  status = mocha([...deviceAccess, '--kvm', 'soft'], ['--no-config', '--timeout', '60000', '--reporter', 'spec', '--ignore', snpSuites, ...specs]) || status;
}
if (extra.length === 0) {
  // The SNP guest suite needs the emulator's guest (/dev/sev-guest, configfs-tsm), which the main
  // pass does not enable: it runs again under `sev-emu run --guest`, where it must not skip.
  console.log('\nThe SNP guest suite, inside the emulated SNP guest (sev-emu run --guest):');
  process.env.SEV_REQUIRE_GUEST = '1';
  status = mocha([...deviceAccess, '--guest'], ['--no-config', '--timeout', '120000', '--reporter', 'spec', GUEST_SPEC]) || status;
}
process.exitCode = status;
