// The differential suite: the same guests run on every KVM this machine has — the emulator's
// software KVM always, the host's /dev/kvm where it exists — each in its own `sev-emu run --kvm`
// process. Every trace (exits with their data, registers, memory) must match what the guest is
// written to do (hand-written corpus) or what an independent model computes (random programs),
// and all KVMs present must give byte-identical traces, memory digests included.
import { strict as assert } from 'node:assert';
import * as path from 'node:path';

import { hostKvmUnusable, ROOT, underFreshEmulator } from '../helpers/env';
import { CORPUS, randomProgram, type Trace } from './trace-guests';

const RANDOM_PROGRAMS = 60;
const SCRIPT = path.join(ROOT, 'dist', 'test', 'kvm', 'trace-guests.js');

function traces(backend: 'soft' | 'host'): Record<string, Trace> {
  const r = underFreshEmulator(['--kvm', backend], [process.execPath, SCRIPT, String(RANDOM_PROGRAMS)]);
  assert.equal(r.status, 0, `trace run on the ${backend} KVM failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { backend: string; traces: Record<string, Trace> };
  assert.equal(out.backend, backend);
  return out.traces;
}

describe('differential: the same guests on every KVM present', function () {
  this.timeout(180_000);
  const runs = new Map<string, Record<string, Trace>>();

  before(function () {
    runs.set('soft', traces('soft'));
    const absent = hostKvmUnusable();
    if (absent === null) runs.set('host', traces('host'));
    console.log(`      KVMs compared: ${[...runs.keys()].join(', ')}${absent === null ? '' : ` (not the host's: ${absent})`}`);
  });

  it('each KVM runs the hand-written guests as they are written', () => {
    for (const [backend, t] of runs) {
      for (const g of CORPUS) {
        const got = t[g.name];
        assert.deepEqual(got.exits, g.expected.exits, `${backend}: ${g.name} exits`);
        assert.deepEqual(got.regs, g.expected.regs, `${backend}: ${g.name} registers`);
        if (g.expected.dump !== undefined) assert.equal(got.dump, g.expected.dump, `${backend}: ${g.name} memory`);
      }
    }
  });

  it(`each KVM runs ${RANDOM_PROGRAMS} random 64-bit programs as an independent model computes them`, () => {
    let outs = 0;
    for (const [backend, t] of runs) {
      for (let seed = 1; seed <= RANDOM_PROGRAMS; seed++) {
        const { expected } = randomProgram(seed);
        const got = t[`random-${seed}`];
        assert.deepEqual(got.exits, expected.exits, `${backend}: random-${seed} exits`);
        assert.deepEqual(got.regs, expected.regs, `${backend}: random-${seed} registers`);
        assert.equal(got.dump, expected.data, `${backend}: random-${seed} data`);
        outs += expected.exits.length;
      }
    }
    assert.ok(outs > RANDOM_PROGRAMS * 2, 'the programs exit to the VMM along the way');
  });

  it('all KVMs present give identical traces, memory digests included (string I/O batching aside)', () => {
    const [first, ...others] = [...runs.entries()];
    assert.equal(first[0], 'soft');
    assert.equal(Object.keys(first[1]).length, CORPUS.length + RANDOM_PROGRAMS);
    for (const [backend, t] of others) assert.deepEqual(t, first[1], `${backend} against ${first[0]}`);
    // One KVM alone: its memory digests must at least be reproducible run to run.
    if (others.length === 0) assert.deepEqual(traces('soft'), first[1], 'a second soft run');
  });
});
