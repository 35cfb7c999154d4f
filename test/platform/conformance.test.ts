// The kernel-conformance suite (test/c/conformance): a C client on the system's kernel headers
// checks that /dev/sev and KVM answer as Linux 7.2 does, on every KVM backend this machine has
// (the software KVM everywhere, the host's where /dev/kvm is usable), each area on a fresh
// emulated machine. The table in native/emu/README.md must list exactly the checks that ran.
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { deviceRequired, emulated, haveCompiler, ROOT, SEV_EMU_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

// Each area with the sev-emu options it needs (the guest area runs inside an emulated SNP guest).
const AREAS: Array<[string, string[]]> = [['platform', []], ['kvm-caps', []], ['kvm-sev', []], ['kvm-mem', []], ['sev-guest', ['--guest']]];

/** Check ids in the README's conformance tables (the last column, each in backticks). */
function readmeCheckIds(readme: string): string[] {
  const start = readme.indexOf('## Kernel conformance');
  assert.ok(start >= 0, 'native/emu/README.md has a "Kernel conformance" section');
  const ids: string[] = [];
  for (const line of readme.slice(start).split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean);
    for (const m of (cells.at(-1) ?? '').matchAll(/`([a-z0-9.-]+)`/g)) ids.push(m[1]);
  }
  return ids;
}

function backends(): string[] {
  const clean = { ...process.env };
  delete clean.LD_PRELOAD;
  delete clean.SEV_EMU_STATE;
  const r = spawnSync(process.execPath, [SEV_EMU_BIN, 'info', '--json'], { encoding: 'utf8', env: clean, timeout: 60_000 });
  const info = JSON.parse(r.stdout) as { hostKvm: string; softKvm: string };
  const list: string[] = [];
  if (info.softKvm === 'available') list.push('soft');
  if (info.hostKvm === 'usable') list.push('host');
  return list;
}

describe('kernel conformance (test/c/conformance, Linux 7.2)', function () {
  this.timeout(300_000);
  let bin: string;
  let dir: string;

  before(function () {
    if (!emulated) skipBecause(this, 'the conformance suite resets the platform and opens /dev/sev as another uid: emulator only');
    if (process.geteuid?.() !== 0) skipBecause(this, 'the conformance suite needs root: it checks the root-only /dev/sev as root and as another uid');
    if (!haveCompiler()) {
      if (deviceRequired) throw new Error('a C compiler (cc) is needed for the conformance suite');
      skipBecause(this, 'no C compiler (cc)');
    }
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-conformance-'));
    bin = path.join(dir, 'conformance');
    const src = path.join(ROOT, 'test', 'c', 'conformance');
    const files = fs.readdirSync(src).filter((f) => f.endsWith('.c')).map((f) => path.join(src, f));
    // The system's kernel headers only (no -I into native/): an independent client.
    execFileSync('cc', ['-std=c11', '-D_GNU_SOURCE', '-Wall', '-Werror', '-O1', '-o', bin, ...files]);
  });
  after(() => dir && fs.rmSync(dir, { recursive: true, force: true }));

  const readmeIds = readmeCheckIds(fs.readFileSync(path.join(ROOT, 'native', 'emu', 'README.md'), 'utf8'));

  it('the README table names each check once', () => {
    assert.ok(readmeIds.length >= 40, `${readmeIds.length} rows`);
    const dupes = readmeIds.filter((id, i) => readmeIds.indexOf(id) !== i);
    assert.deepEqual(dupes, [], 'ids listed twice');
  });

  it('every check passes on every KVM backend, and the table lists exactly the checks that ran', () => {
    const kvms = backends();
    assert.ok(kvms.length > 0, 'no KVM backend: neither the software KVM (Unicorn, scripts/install-unicorn.sh) nor a usable /dev/kvm');
    for (const kvm of kvms) {
      const passed = new Set<string>();
      const notApplicable: string[] = [];
      for (const [area, options] of AREAS) {
        // The node as the kernel creates it (0600 root), whatever the caller's environment says.
        const r = underFreshEmulator(['--kvm', kvm, '--device-mode', '0600', ...options], [bin, area], { SEV_EMU_DEVICE_GROUP: '' });
        const failed = r.stdout.split('\n').filter((l) => l.startsWith('not ok'));
        assert.deepEqual(failed, [], `--kvm ${kvm}, ${area}:\n${r.stdout}\n${r.stderr}`);
        assert.equal(r.status, 0, `--kvm ${kvm}, ${area}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
        for (const m of r.stdout.matchAll(/^ok - ([a-z0-9.-]+) \(/gm)) passed.add(m[1]);
        // An area may not apply to a host KVM (kvm-mem needs KVM_X86_SW_PROTECTED_VM, which
        // distribution kernels do not build); the software KVM must run every area.
        const na = /^# not applicable on this KVM: (.*)$/m.exec(r.stdout);
        if (na) {
          assert.equal(kvm, 'host', `--kvm ${kvm}, ${area}: ${na[1]}`);
          console.log(`      --kvm host, ${area}: not applicable (${na[1]})`);
          notApplicable.push(`${area}.`);
        }
      }
      const unlisted = [...passed].filter((id) => !readmeIds.includes(id));
      const notRun = readmeIds.filter((id) => !passed.has(id) && !notApplicable.some((p) => id.startsWith(p)));
      assert.deepEqual(unlisted, [], `--kvm ${kvm}: checks missing from the README table`);
      assert.deepEqual(notRun, [], `--kvm ${kvm}: README rows whose check did not run and pass`);
    }
  });
});
