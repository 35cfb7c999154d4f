// "The emulated CPU is the emulated EPYC": under a fresh emulator of each generation, CPUID,
// /proc/cpuinfo and `sev ok` describe that generation's EPYC, whatever CPU the tests run on.
// Leaf 0x8000001F is checked against generation.cc's table, its single source.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { haveCompiler, hostKvmUnusable, ROOT, SEV_BIN, skipBecause, underFreshEmulator } from '../helpers/env';

interface GenerationRow {
  name: string;
  es: boolean;
  snp: boolean;
  cpuid8000001f: number[];
}

/** kGenerations in native/emu/generation.cc: {"name", es, snp, ..., {EAX, EBX, ECX, EDX}, tcb}. */
function generationTable(): GenerationRow[] {
  const src = fs.readFileSync(path.join(ROOT, 'native', 'emu', 'generation.cc'), 'utf8');
  const rows: GenerationRow[] = [];
  for (const m of src.matchAll(/\{"(\w+)",\s*(true|false),\s*(true|false),[^{}]*\{([^{}]*)\}/g)) {
    rows.push({ name: m[1], es: m[2] === 'true', snp: m[3] === 'true', cpuid8000001f: m[4].split(',').map((v) => Number(v.trim())) });
  }
  return rows;
}

/** The part each generation emulates, and what its CPUID says (family/model/stepping in EAX of leaf 1). */
const PARTS: Record<string, { brand: string; signature: number; family: number; model: number; stepping: number; phys: number; virt: number }> = {
  naples: { brand: 'AMD EPYC 7551P 32-Core Processor', signature: 0x00800f12, family: 0x17, model: 0x01, stepping: 2, phys: 48, virt: 48 },
  rome: { brand: 'AMD EPYC 7742 64-Core Processor', signature: 0x00830f10, family: 0x17, model: 0x31, stepping: 0, phys: 48, virt: 48 },
  milan: { brand: 'AMD EPYC 7763 64-Core Processor', signature: 0x00a00f11, family: 0x19, model: 0x01, stepping: 1, phys: 48, virt: 48 },
  genoa: { brand: 'AMD EPYC 9654 96-Core Processor', signature: 0x00a10f11, family: 0x19, model: 0x11, stepping: 1, phys: 52, virt: 57 },
  turin: { brand: 'AMD EPYC 9655 96-Core Processor', signature: 0x00b00f21, family: 0x1a, model: 0x02, stepping: 1, phys: 52, virt: 57 },
};

interface Check { id: string; state: string; detail?: string }
interface Report { emulated: string | null; checks: Check[] }
interface Observed {
  emulator: string | null;
  cpuid: Record<string, number[]>;
  cpuinfo: string;
  cpus: number;
  ok: Record<string, { status: number | null; report: Report }>;
}

/** Runs inside the fresh emulator: CPUID through the addon, /proc/cpuinfo, and `sev ok` per level. */
function probeScript(levels: string[]): string {
  const native = path.join(ROOT, 'dist', 'lib', 'native.js');
  return `
const { native } = require(${JSON.stringify(native)});
const { spawnSync } = require('node:child_process');
const leaves = [[0, 0], [1, 0], [0x80000000, 0], [0x80000002, 0], [0x80000003, 0], [0x80000004, 0],
  [0x80000008, 0], [0x8000001f, 0], [0x11, 0], [0x40000000, 0], [0x8fffffff, 0], [0xc0000000, 0]];
const cpuid = {};
for (const [l, s] of leaves) cpuid[l.toString(16)] = native.cpuid(l, s).map((r) => r >>> 0);
const ok = {};
for (const level of ${JSON.stringify(levels)}) {
  const r = spawnSync(process.execPath, [${JSON.stringify(SEV_BIN)}, 'ok', level, '--json'], { encoding: 'utf8' });
  ok[level] = { status: r.status, report: JSON.parse(r.stdout) };
}
process.stdout.write(JSON.stringify({
  emulator: native.emulator(), cpuid, ok,
  cpuinfo: require('node:fs').readFileSync('/proc/cpuinfo', 'utf8'),
  cpus: require('node:os').cpus().length,
}));
`;
}

function brandOf(cpuid: Record<string, number[]>): string {
  const b = Buffer.alloc(48);
  ['80000002', '80000003', '80000004'].forEach((leaf, i) => cpuid[leaf].forEach((r, j) => b.writeUInt32LE(r, i * 16 + j * 4)));
  return b.toString('latin1').replace(/\0/g, '').trim();
}

function field(block: string, name: string): string | undefined {
  return block.match(new RegExp(`^${name}\\s*: ?(.*)$`, 'm'))?.[1];
}

const table = generationTable();

describe('emulated CPU: the emulated EPYC, whatever the real CPU', function () {
  this.timeout(600_000);
  const observed = new Map<string, Observed>();

  before(function () {
    assert.deepEqual(table.map((g) => g.name), ['naples', 'rome', 'milan', 'genoa', 'turin'], 'generation.cc parsed');
    for (const g of table) {
      // Naples: `ok es` too, where the emulated CPU must say no.
      const levels = ['sev', 'es', ...(g.snp ? ['snp'] : [])];
      const r = underFreshEmulator(['--generation', g.name], [process.execPath, '-e', probeScript(levels)]);
      assert.equal(r.status, 0, `${g.name}: ${r.stderr}`);
      observed.set(g.name, JSON.parse(r.stdout) as Observed);
    }
    // A host that enabled SNP (the BIOS set up the RMP): Milan stands for the SNP generations.
    // SNP VMs are the software KVM's: kvm_amd's sev_snp follows the KVM that answers /dev/kvm.
    for (const kvm of ['soft', 'host'] as const) {
      if (kvm === 'host' && hostKvmUnusable()) continue;
      const r = underFreshEmulator(['--generation', 'milan', '--host-snp', '--kvm', kvm], [process.execPath, '-e', probeScript(['snp'])]);
      assert.equal(r.status, 0, `milan --host-snp --kvm ${kvm}: ${r.stderr}`);
      observed.set(`milan --host-snp ${kvm}`, JSON.parse(r.stdout) as Observed);
    }
  });

  for (const g of table) {
    const part = PARTS[g.name];
    const reduction = (g.cpuid8000001f[1] >>> 6) & 0x3f;

    describe(g.name, () => {
      it(`CPUID is the ${part.brand}'s; 0x8000001F is generation.cc's row; out-of-range leaves are zeros`, () => {
        const o = observed.get(g.name)!;
        assert.equal(o.emulator, g.name);
        const [max, b, c, d] = o.cpuid['0'];
        assert.equal(Buffer.from(new Uint32Array([b, d, c]).buffer).toString('latin1'), 'AuthenticAMD');
        assert.ok(max >= 0xd);
        assert.equal(o.cpuid['1'][0], part.signature);
        assert.ok(o.cpuid['80000000'][0] >= 0x8000001f);
        assert.equal(brandOf(o.cpuid), part.brand);
        assert.equal(o.cpuid['80000008'][0] & 0xff, part.phys);
        assert.equal((o.cpuid['80000008'][0] >>> 8) & 0xff, part.virt);
        assert.deepEqual(o.cpuid['8000001f'], g.cpuid8000001f.map((v) => v >>> 0));
        // Above the highest basic leaf (0x11), the hypervisor range, past the extended range: AMD answers zeros.
        for (const leaf of ['11', '40000000', '8fffffff', 'c0000000']) assert.deepEqual(o.cpuid[leaf], [0, 0, 0, 0], leaf);
      });

      it('/proc/cpuinfo is the emulated part: one block per online CPU, its model and the SEV flags of the generation', () => {
        const o = observed.get(g.name)!;
        const blocks = o.cpuinfo.trim().split(/\n\n/);
        assert.equal(blocks.length, o.cpus);
        blocks.forEach((block, i) => {
          assert.equal(field(block, 'processor'), String(i));
          assert.equal(field(block, 'vendor_id'), 'AuthenticAMD');
          assert.equal(field(block, 'model name'), part.brand);
          assert.equal(field(block, 'cpu family'), String(part.family));
          assert.equal(field(block, 'model'), String(part.model));
          assert.equal(field(block, 'stepping'), String(part.stepping));
          // The kernel subtracts CPUID 0x8000001F EBX[11:6] when the BIOS enabled memory encryption.
          assert.equal(field(block, 'address sizes'), `${part.phys - reduction} bits physical, ${part.virt} bits virtual`);
          const flags = new Set((field(block, 'flags') ?? '').split(' '));
          for (const f of ['fpu', 'lm', 'svm', 'npt', 'nrip_save', 'sme', 'sev']) assert.ok(flags.has(f), `${g.name}: ${f}`);
          assert.equal(flags.has('sev_es'), g.es, 'sev_es');
          // bsp_determine_snp clears sev_snp unless the host enabled SNP (sev-emu run --host-snp).
          assert.equal(flags.has('sev_snp'), false, 'sev_snp: the emulated host did not enable SNP');
          assert.ok(!flags.has('hypervisor'), 'an emulated host is bare metal');
        });
      });

      it('`sev ok --json` passes the CPU, CPUID and /proc/cpuinfo checks with the emulated brand', () => {
        const o = observed.get(g.name)!;
        const byId = (level: string) => new Map(o.ok[level].report.checks.map((c) => [c.id, c]));
        const sev = byId('sev');
        assert.equal(o.ok.sev.report.emulated, g.name);
        assert.equal(sev.get('amd-cpu')!.detail, 'AuthenticAMD');
        assert.equal(sev.get('epyc')!.detail, part.brand);
        assert.equal(sev.get('phys-reduction')!.detail, String(reduction));
        assert.equal(sev.get('asids')!.detail, String(g.cpuid8000001f[2]));
        const mustPass = ['amd-cpu', 'epyc', 'cpuid-sme', 'cpuid-sev', 'c-bit', 'phys-reduction', 'asids', 'min-asid',
          'page-flush', 'cpuinfo-sme', 'cpuinfo-sev', 'sme-active', 'kvm-sev', 'firmware'];
        for (const id of mustPass) assert.equal(sev.get(id)?.state, 'PASS', `${g.name} sev: ${JSON.stringify(sev.get(id))}`);
        assert.match(sev.get('sme-active')!.detail!, /emulated platform: memory encryption active/);

        const es = byId('es');
        const esChecks = ['cpuid-sev-es', 'cpuinfo-sev_es', 'kvm-sev-es', 'firmware-es'];
        if (g.es) {
          for (const id of esChecks) assert.equal(es.get(id)?.state, 'PASS', `${g.name} es: ${JSON.stringify(es.get(id))}`);
        } else {
          // Naples has no SEV-ES: the emulated CPU and kernel say so, as a real 7551P host would.
          assert.equal(es.get('cpuinfo-sev_es')!.state, 'FAIL');
          assert.equal(es.get('kvm-sev-es')!.state, 'FAIL');
          assert.equal(o.ok.es.status, 1);
        }
        if (g.snp) {
          // The CPU has SNP; the host did not enable it, so neither the kernel nor KVM offers it.
          const snp = byId('snp');
          for (const id of ['cpuid-sev-snp', 'cpuid-vmpl']) {
            assert.equal(snp.get(id)?.state, 'PASS', `${g.name} snp: ${JSON.stringify(snp.get(id))}`);
          }
          for (const id of ['cpuinfo-sev_snp', 'kvm-sev-snp']) {
            assert.equal(snp.get(id)?.state, 'FAIL', `${g.name} snp: ${JSON.stringify(snp.get(id))}`);
          }
          assert.equal(o.ok.snp.status, 1);
        }
      });
    });
  }

  it('with --host-snp the kernel lists sev_snp, and kvm_amd says sev_snp=Y on the software KVM (the only one with SNP VMs), N on the host\'s', () => {
    for (const [kvm, expected] of [['soft', 'PASS'], ['host', 'FAIL']] as const) {
      const o = observed.get(`milan --host-snp ${kvm}`);
      if (!o) continue; // no usable host KVM
      const flags = new Set((field(o.cpuinfo, 'flags') ?? '').split(' '));
      assert.ok(flags.has('sev_snp'), 'sev_snp');
      const snp = new Map(o.ok.snp.report.checks.map((c) => [c.id, c]));
      assert.equal(snp.get('cpuinfo-sev_snp')?.state, 'PASS', JSON.stringify(snp.get('cpuinfo-sev_snp')));
      assert.equal(snp.get('kvm-sev-snp')?.state, expected, `${kvm}: ${JSON.stringify(snp.get('kvm-sev-snp'))}`);
    }
  });

  it('C programs reading /proc/cpuinfo through stdio (fopen, fopen64) see the emulated part too', function () {
    if (!haveCompiler()) skipBecause(this, 'no C compiler (cc)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-cpuinfo-'));
    try {
      const src = path.join(dir, 'model.c');
      fs.writeFileSync(src, `#include <stdio.h>
#include <string.h>
int main(void) {
  FILE *f = fopen("/proc/cpuinfo", "re");
  char line[512];
  if (!f) return 2;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0) { fputs(strchr(line, ':') + 2, stdout); break; }
  return fclose(f) == 0 ? 0 : 3;
}
`);
      for (const [name, flags] of [['fopen', []], ['fopen64', ['-D_FILE_OFFSET_BITS=64']]] as const) {
        const bin = path.join(dir, name);
        execFileSync('cc', ['-O2', ...flags, '-o', bin, src]);
        const r = underFreshEmulator(['--generation', 'genoa'], [bin]);
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stdout.trim(), PARTS.genoa.brand, name);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
