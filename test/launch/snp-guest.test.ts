// An SEV-SNP guest running on the software machine (guests/snp, the demo's guest): it validates
// memory, converts pages through the GHCB, gets a derived key and its attestation report from the
// firmware (VMPCK-encrypted guest messages) — and a dishonest or careless host cannot make it
// accept anything else. Each case runs in a fresh emulator of an SNP host with the emulated KDS
// (snp-guest-cases.ts); the report is verified by lib/snp against the KDS's chain.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';

import { underFreshEmulator } from '../helpers/env';

const CASES = path.join(__dirname, 'snp-guest-cases.js');

interface Outcome {
  printed: string;
  halted: boolean;
  exit?: { reason: string; type?: number; data?: string[]; gpa?: string; private?: boolean };
  secret: string;
  checks?: Array<[string, boolean]>;
  served?: boolean;
  error?: string;
}

function run(name: string): Outcome {
  const r = underFreshEmulator(['--host-snp', '--kvm', 'soft', '--kds'], [process.execPath, CASES, name, '--json']);
  assert.ok(r.stdout.trim(), `case ${name} printed nothing: ${r.stderr}`);
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as Outcome;
  assert.equal(o.error, undefined, o.error);
  return o;
}

const SEV_TERM = 6; // KVM_SYSTEM_EVENT_SEV_TERM
const GUEST_TERMINATION = '0x10100'; // the guest's MSR-protocol termination request (reason set 0, code 1)

describe('launch: an SEV-SNP guest runs, attests and gets its secret', function () {
  this.timeout(120_000);

  const allPass = [['signature and chain', true], ['measurement', true], ['report data', true], ['host data', true], ['policy', true]];

  it('honest host: the report (certificates served by the host: KVM_EXIT_SNP_REQ_CERTS) verifies — chain, signature, measurement, nonce and key, host data, policy — and the guest prints the secret', () => {
    const o = run('honest');
    assert.equal(o.served, true);
    assert.deepEqual(o.checks, allPass);
    assert.equal(o.printed, o.secret);
    assert.ok(o.halted);
  });

  it('a host without KVM_SEV_SNP_ENABLE_REQ_CERTS: KVM gives the guest an empty certificate table, the verifier gets them from the KDS', () => {
    const o = run('kds-certs');
    assert.equal(o.served, false);
    assert.deepEqual(o.checks, allPass);
    assert.equal(o.printed, o.secret);
  });

  it('certificates larger than the guest\'s buffer: the host answers ENOSPC, the guest sees INVALID_LEN', () => {
    const o = run('certs-too-big');
    assert.equal(o.printed, 'snp guest: the host\'s certificates do not fit the buffer\n');
    assert.equal(o.checks, undefined); // no report reached the verifier
  });

  it('a host that edits the report: the signature no longer verifies and no secret is released', () => {
    const o = run('tampered-report');
    assert.deepEqual(o.checks?.slice(0, 2), [['signature and chain', false], ['measurement', false]]);
    assert.equal(o.printed, '');
    assert.equal(o.exit?.reason, 'IO'); // the guest still waits for its secret
  });

  it('a host that edits the sealed secret: the guest\'s AES-GCM refuses it', () => {
    const o = run('tampered-secret');
    assert.equal(o.printed, 'snp guest: the secret does not decrypt\n');
    assert.ok(o.halted);
  });

  it('a host that refuses a page-state change, or never enabled KVM_HC_MAP_GPA_RANGE exits: the guest terminates', () => {
    for (const name of ['refuse-page-state', 'no-hypercall-exit']) {
      const o = run(name);
      assert.deepEqual(o.exit, { reason: 'SYSTEM_EVENT', type: SEV_TERM, data: [GUEST_TERMINATION] }, name);
    }
  });

  it('a host that takes the GHCB page back (private): the guest\'s shared access is KVM_EXIT_MEMORY_FAULT', () => {
    const o = run('ghcb-made-private');
    assert.deepEqual(o.exit, { reason: 'MEMORY_FAULT', gpa: '0x25000', private: false });
  });

  it('a host that does not launch the guest\'s stack: pages never validated raise #VC, which with no handler shuts the vCPU down', () => {
    const o = run('stack-not-launched');
    assert.equal(o.exit?.reason, 'SHUTDOWN');
    assert.equal(o.printed, '');
  });
});
