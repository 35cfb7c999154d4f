// Boot images are hashed in bounded memory: `sev measurement build` and `sev snp measure` with a
// 1 GiB kernel and a 1 GiB initrd (sparse files) peak at ≤ 64 MiB RSS — they stream each file
// through SHA-256 once instead of reading it — and give the digest the Buffer API gives. Not
// timed (the bench times it); the peak is the child's own getrusage maxrss (test/helpers/peak-rss).
import * as assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { expectedMeasurement } from '../../lib/owner/expected-measurement';
import { digestFile, digestFileAsync, FileDigest } from '../../lib/owner/file-digest';
import { calcLaunchDigest } from '../../lib/snp/measurement';
import { fixturesDir } from '../helpers/env';
import { runWithPeakRss } from '../helpers/peak-rss';
import { SEV_BIN } from './fixtures';

const GiB = 1 << 30;
const PEAK_MIB = 64;
const TIK = Buffer.from('0123456789abcdef');
const NONCE = Buffer.from('fedcba9876543210');

/** An AmdSev OVMF (hashes table area and SNP metadata), from the shared fixtures. */
const OVMF = path.join(fixturesDir(), 'snp', 'measurement', 'ovmf_AmdSev_suffix.bin');

const buildArgs = (kernel: string, initrd: string) => [
  'measurement', 'build', '--api-major', '1', '--api-minor', '49', '--build-id', '6', '--policy', '1',
  '--tik', TIK.toString('base64'), '--nonce', NONCE.toString('base64'),
  '--firmware', OVMF, '--kernel', kernel, '--initrd', initrd, '--cmdline', 'console=ttyS0',
];
const snpArgs = (kernel: string, initrd: string) => [
  'snp', 'measure', '--ovmf', OVMF, '--vcpus', '2', '--vcpu-type', 'EPYC-v4', '--kernel', kernel, '--initrd', initrd, '--append', 'console=ttyS0',
];

/** What the library computes from the same inputs (`kernel`/`initrd` as bytes or digests). */
function libraryResults(kernel: Uint8Array | FileDigest, initrd: Uint8Array | FileDigest): { build: string; snp: string } {
  const firmware = fs.readFileSync(OVMF);
  const build = expectedMeasurement(
    { apiMajor: 1, apiMinor: 49, build: 6, policy: 1, tik: TIK, images: { firmware, kernelBoot: { kernel, initrd, cmdline: 'console=ttyS0' } } },
    NONCE,
  ).blob.toString('base64');
  const snp = calcLaunchDigest({ mode: 'snp', ovmf: firmware, vcpus: 2, vcpuType: 'EPYC-v4', kernel, initrd, append: 'console=ttyS0' }).toString('hex');
  return { build, snp };
}

function cli(args: string[]) {
  const r = runWithPeakRss(SEV_BIN, args);
  assert.equal(r.status, 0, `sev ${args.join(' ')}\n${r.stdout}${r.stderr}`);
  return { out: r.stdout.trim(), peakMiB: r.peakMiB };
}

describe('owner-side hashing in bounded memory', function () {
  this.timeout(300_000);
  let tmp: string;
  before(function () {
    if (!fs.existsSync(OVMF)) {
      const why = `the AmdSev OVMF fixture is not at ${OVMF} (set SEV_FIXTURES)`;
      if (process.env.CI) throw new Error(why);
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-bounded-'));
  });
  after(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a small kernel and initrd: the streamed CLI and the Buffer API give the same digests', async () => {
    const kernel = randomBytes(3 * 1024 * 1024 + 17); // not a multiple of the read size
    const initrd = randomBytes(5000);
    fs.writeFileSync(path.join(tmp, 'kernel'), kernel);
    fs.writeFileSync(path.join(tmp, 'initrd'), initrd);
    const fromBuffers = libraryResults(kernel, initrd);
    assert.equal(cli(buildArgs(path.join(tmp, 'kernel'), path.join(tmp, 'initrd'))).out, fromBuffers.build);
    assert.equal(cli(snpArgs(path.join(tmp, 'kernel'), path.join(tmp, 'initrd'))).out, fromBuffers.snp);
    // The library's streaming entry points agree with the Buffer path too.
    assert.deepEqual(libraryResults(digestFile(path.join(tmp, 'kernel')), await digestFileAsync(path.join(tmp, 'initrd'))), fromBuffers);
    assert.deepEqual(digestFile(path.join(tmp, 'kernel'), { algorithms: ['sha256', 'sha384'], readSize: 4096 }).digest('sha384'), createHash('sha384').update(kernel).digest());
  });

  it('1 GiB sparse kernel and initrd: measurement build and snp measure peak at ≤ 64 MiB RSS, same digests', () => {
    const kernel = path.join(tmp, 'kernel-1g');
    const initrd = path.join(tmp, 'initrd-1g');
    for (const f of [kernel, initrd]) {
      fs.writeFileSync(f, '');
      fs.truncateSync(f, GiB);
    }
    // The expected digests from the Buffer-free API: SHA-256 of 1 GiB of zeros, computed here in steps.
    const h = createHash('sha256');
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < GiB / zeros.length; i++) h.update(zeros);
    const zero = new FileDigest(GiB, { sha256: h.digest() });
    const expected = libraryResults(zero, zero);

    const build = cli(buildArgs(kernel, initrd));
    assert.equal(build.out, expected.build);
    assert.ok(build.peakMiB <= PEAK_MIB, `sev measurement build peaked at ${build.peakMiB.toFixed(1)} MiB RSS (limit ${PEAK_MIB})`);
    const snp = cli(snpArgs(kernel, initrd));
    assert.equal(snp.out, expected.snp);
    assert.ok(snp.peakMiB <= PEAK_MIB, `sev snp measure peaked at ${snp.peakMiB.toFixed(1)} MiB RSS (limit ${PEAK_MIB})`);
    console.log(`      peak RSS: measurement build ${build.peakMiB.toFixed(1)} MiB, snp measure ${snp.peakMiB.toFixed(1)} MiB`);
  });
});
