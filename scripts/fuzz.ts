// `npm run fuzz [-- --short] [--runs N] [--seconds S] [--only a,b] [--seed N] [--jobs N] [--list]`: a
// mutation fuzzer for every parser of outside input. Each target starts from real inputs (the
// conformance fixtures in ../shared/fixtures or SEV_FIXTURES, plus inputs the project builds), and
// feeds the parser mutations of them: bit flips, interesting integers at every width, DER length
// bytes, truncation, extension, deletion, duplication, splicing of two seeds, random windows and
// random inputs. The pass criterion: every input is parsed (and what is parsed re-encodes, formats
// and converts without error) or refused with the project's own error (SevError and subclasses).
// Any other exception, an input that takes longer than --slow-ms, a parser that stops making
// progress for --hang-ms (the worker is stopped) or a heap above --heap-mb is a finding: the input
// is saved under build/fuzz-findings/ and the run fails.
//
// Full run: 1,000,000 inputs per target. --short (CI): a few seconds per target. Inputs are a
// function of (seed, target, index), so a finding is reproduced with --seed and --only.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';

import {
  CaCertificate,
  parseAskArk,
  SevCertificate,
  splitAskArk,
  splitChainFile,
  splitPdhExportChain,
  toPublicKey,
} from '../lib/certs/index';
import { SevError } from '../lib/errors';
import {
  ATTESTATION_REPORT_SIZE,
  buildSessionBlob,
  checkSevHashesSupport,
  decodeBase64Strict,
  guidToBytes,
  guidToString,
  OvmfImage,
  parseAttestationReport as parseSevReport,
  parseSessionBlob,
  Vmsa,
} from '../lib/owner/index';
import {
  buildIdBlock,
  formatReport,
  parseAttestationReport as parseSnpReport,
  parseCertChainPem,
  parseIdAuth,
  parseIdBlock,
  parseReportPolicy,
  parseSnpCertificate,
  parseSnpCrl,
  parseSnpPublicKey,
  pemCertificates,
  reportToJSON,
  serializeReport,
  vcekExtensions,
  type SnpGeneration,
} from '../lib/snp/index';

const ROOT = path.resolve(__dirname, '..', '..');

// ---------------------------------------------------------------------------------------------
// Deterministic randomness: one small PRNG per input, seeded from (run seed, target, index).

class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  /** mulberry32 */
  u32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  below(n: number): number {
    return n <= 0 ? 0 : this.u32() % n;
  }
  chance(oneIn: number): boolean {
    return this.below(oneIn) === 0;
  }
  pick<T>(a: readonly T[]): T {
    return a[this.below(a.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      b[i] = v;
      if (i + 1 < n) b[i + 1] = v >>> 8;
      if (i + 2 < n) b[i + 2] = v >>> 16;
      if (i + 3 < n) b[i + 3] = v >>> 24;
    }
    return b;
  }
}

function inputSeed(runSeed: number, target: string, index: number): number {
  let h = 0x811c9dc5 ^ runSeed;
  for (let i = 0; i < target.length; i++) h = Math.imul(h ^ target.charCodeAt(i), 0x01000193);
  h = Math.imul(h ^ index, 0x9e3779b1) ^ Math.imul(index >>> 16, 0x85ebca6b);
  return h >>> 0;
}

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84, 0xff, 0x30, 0x02, 0x03, 0x04, 0x05, 0x06, 0xa0, 0xa3];
const INTERESTING_32 = [0, 1, 2, 3, 4, 0x10, 0x13, 0x20, 0x7f, 0x80, 0xff, 0x100, 0x101, 0x102, 0x103, 0x400, 0x800, 0x1000, 0x1001,
  0x1002, 0x1003, 0x1004, 0x4a0, 0x2a0, 0xd0, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/** One mutation of `seeds` (never modifies them). */
function mutate(rng: Rng, seeds: readonly Buffer[], maxLen: number): Buffer {
  if (rng.chance(64)) return rng.bytes(rng.chance(2) ? rng.pick(seeds).length : rng.below(Math.min(maxLen, 4096)));
  let b = Buffer.from(rng.pick(seeds));
  const ops = 1 + (rng.chance(2) ? 0 : rng.below(rng.chance(4) ? 16 : 4));
  for (let k = 0; k < ops; k++) {
    const n = b.length;
    const at = rng.below(n);
    switch (rng.below(13)) {
      case 0: case 1: // bit flip
        if (n) b[at] ^= 1 << rng.below(8);
        break;
      case 2: // interesting byte
        if (n) b[at] = rng.pick(INTERESTING_8);
        break;
      case 3: { // interesting u16/u32/u64, either byte order
        const width = rng.pick([2, 4, 8]);
        if (n < width) break;
        const o = Math.min(rng.chance(2) ? at - (at % width) : at, n - width);
        const v = rng.chance(4) ? (n + rng.below(3) - 1) >>> 0 : rng.pick(INTERESTING_32);
        const le = rng.chance(2);
        b.fill(rng.chance(2) ? 0 : 0xff, o, o + width);
        for (let i = 0; i < Math.min(width, 4); i++) b[le ? o + i : o + width - 1 - i] = (v >>> (8 * i)) & 0xff;
        break;
      }
      case 4: { // a DER-style length: short, long form with 1-4 length bytes, or indefinite
        if (n < 5) break;
        const form = rng.below(4);
        if (form === 0) b[at] = rng.below(0x80);
        else if (form === 1) b[at] = 0x80;
        else {
          const bytes = 1 + rng.below(4);
          b[Math.min(at, n - 1 - bytes)] = 0x80 | bytes;
          for (let i = 1; i <= bytes; i++) b[Math.min(at, n - 1 - bytes) + i] = rng.chance(2) ? 0xff : rng.below(256);
        }
        break;
      }
      case 5: { // random window
        const len = 1 + rng.below(Math.min(64, Math.max(1, n)));
        rng.bytes(len).copy(b, at);
        break;
      }
      case 6: // truncate
        b = b.subarray(0, rng.chance(2) ? rng.below(n + 1) : Math.max(0, n - 1 - rng.below(16)));
        break;
      case 7: // extend
        if (n < maxLen) b = Buffer.concat([b, rng.chance(2) ? rng.bytes(1 + rng.below(64)) : Buffer.alloc(1 + rng.below(64))]);
        break;
      case 8: { // delete a range
        const len = 1 + rng.below(Math.min(256, Math.max(1, n - at)));
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        break;
      }
      case 9: { // duplicate a range in place
        if (!n || n >= maxLen) break;
        const from = rng.below(n);
        const len = 1 + rng.below(Math.min(256, n - from));
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
        break;
      }
      case 10: { // splice with another seed
        const other = rng.pick(seeds);
        const cut = rng.below(Math.min(n, other.length) + 1);
        b = Buffer.concat([b.subarray(0, cut), other.subarray(cut)]);
        break;
      }
      case 11: { // copy a block within the input
        if (n < 2) break;
        const from = rng.below(n);
        const len = 1 + rng.below(Math.min(128, n - from));
        Buffer.from(b.subarray(from, from + len)).copy(b, at);
        break;
      }
      default: // a run of one byte value
        if (n) b.fill(rng.pick(INTERESTING_8), at, Math.min(n, at + 1 + rng.below(32)));
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

/** Text mutations: as bytes (latin1), plus line-level edits of PEM/JSON text. */
function mutateText(rng: Rng, seeds: readonly Buffer[], maxLen: number): Buffer {
  if (rng.chance(3)) {
    const lines = rng.pick(seeds).toString('latin1').split('\n');
    const i = rng.below(lines.length);
    switch (rng.below(5)) {
      case 0: lines.splice(i, 1); break;
      case 1: lines.splice(i, 0, lines[rng.below(lines.length)]); break;
      case 2: lines[i] = lines[i].replace(/[A-Za-z0-9+/=]/g, (c) => (rng.chance(40) ? String.fromCharCode(rng.below(128)) : c)); break;
      case 3: lines[i] = lines[i].slice(0, rng.below(lines[i].length + 1)); break;
      default: lines[i] += rng.pick(['\r', '=', '==', ' ', '\u00ff', '-----END CERTIFICATE-----', '-----BEGIN CERTIFICATE-----', '"', '{', '}', '0x', '1e999']);
    }
    return Buffer.from(lines.join('\n'), 'latin1').subarray(0, maxLen);
  }
  return mutate(rng, seeds, maxLen);
}

// ---------------------------------------------------------------------------------------------
// Targets

interface Target {
  name: string;
  what: string;
  /** Real inputs to start from; null (with a reason) when none can be had here. */
  seeds(): Buffer[] | string;
  /** Parse, then use what was parsed as callers do (re-encode, format, convert). */
  run(input: Buffer, rng: Rng): void;
  text?: boolean;
  maxLen?: number;
  /** A generator of its own (structure-aware), instead of byte/text mutation. */
  generate?(rng: Rng, seeds: readonly Buffer[], maxLen: number): Buffer;
}

const JSON_VALUES: unknown[] = [null, true, false, 0, -1, 1, 0.5, 255, 256, 65536, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, -(2 ** 63), 1e308,
  '', '0', '0x', '0x1', '-1', '1.', '1.2.3', '999.999', 'ff', 'f', 'zz', 'aa'.repeat(48), 'aa'.repeat(47) + 'a', 'AA'.repeat(64),
  '0x' + 'f'.repeat(16), '0x' + 'f'.repeat(17), 'vcek', 'vlek', 'none', [], {}, [''], ['aa'.repeat(48), 1], { snp: -1 }, { x: 1 },
  { __proto__: null }, '__proto__', 'constructor'];

/** JSON mutations: replace, delete or add a value anywhere in a seed's tree; else text mutation. */
function mutateJson(rng: Rng, seeds: readonly Buffer[], maxLen: number): Buffer {
  if (rng.chance(4)) return mutateText(rng, seeds, maxLen);
  const root = JSON.parse(rng.pick(seeds).toString('utf8')) as Record<string, unknown>;
  const edits = 1 + rng.below(3);
  for (let k = 0; k < edits; k++) {
    let node: Record<string, unknown> = root;
    for (;;) {
      const keys = Object.keys(node);
      if (!keys.length) break;
      const key = rng.pick(keys);
      const child = node[key];
      if (child && typeof child === 'object' && rng.chance(2)) {
        node = child as Record<string, unknown>;
        continue;
      }
      const op = rng.below(4);
      if (op === 0) delete node[key];
      // (a copy: a later edit may descend into the value)
      else if (op === 1) node[rng.chance(2) ? key + '_x' : rng.pick(['__proto__', 'constructor', 'toString', 'policy', 'debug'])] = structuredClone(rng.pick(JSON_VALUES));
      else node[key] = structuredClone(rng.pick(JSON_VALUES));
      break;
    }
  }
  return Buffer.from(JSON.stringify(root)).subarray(0, maxLen);
}

function fixturesDir(): string {
  return process.env.SEV_FIXTURES ?? path.resolve(ROOT, '..', 'shared', 'fixtures');
}
function fixture(...parts: string[]): Buffer {
  return fs.readFileSync(path.join(fixturesDir(), ...parts));
}
function fixturesPresent(): boolean {
  return fs.existsSync(path.join(fixturesDir(), 'amd', 'rome', 'pdh.cert'));
}
const NO_FIXTURES = `the conformance fixtures are not at ${fixturesDir()} (set SEV_FIXTURES)`;
const SEV_GENS = ['naples', 'rome'];
const CA_GENS = ['naples', 'rome', 'milan', 'genoa', 'turin'];
const SNP_GENS: (SnpGeneration | undefined)[] = [undefined, 'milan', 'genoa', 'turin'];

function sevCertSeeds(): Buffer[] {
  return SEV_GENS.flatMap((g) => ['pdh', 'pek', 'oca', 'cek'].map((n) => fixture('amd', g, `${n}.cert`)));
}
function caSeeds(): Buffer[] {
  return CA_GENS.flatMap((g) => ['ark', 'ask'].map((n) => fixture('amd', 'builtin', g, `${n}.cert`)));
}
function derOfPem(pem: Buffer): Buffer[] {
  return pemCertificates(pem);
}

/** A CRL made here with openssl (AMD's real CRLs are not among the fixtures), revoking three serials. */
function crlSeed(): Buffer[] | string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sev-fuzz-crl-'));
  try {
    const sh = (args: string[]) => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.error?.message ?? r.stderr}`);
    };
    sh(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'k', '-out', 'c', '-subj', '/CN=ARK-Fuzz', '-days', '2']);
    fs.writeFileSync(path.join(dir, 'index.txt'), ['01', '0a1b', '7fffffffffffffff'].map((s) => `R\t300101000000Z\t240101000000Z\t${s}\tunknown\t/CN=r${s}\n`).join(''));
    fs.writeFileSync(path.join(dir, 'n'), '01\n');
    fs.writeFileSync(path.join(dir, 'ca.cnf'), `[ca]\ndefault_ca = t\n[t]\ndatabase = ${dir}/index.txt\ncrlnumber = ${dir}/n\ndefault_md = sha384\n`);
    sh(['ca', '-gencrl', '-config', 'ca.cnf', '-keyfile', 'k', '-cert', 'c', '-crldays', '30', '-out', 'crl.pem']);
    sh(['crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der']);
    return [fs.readFileSync(path.join(dir, 'crl.der'))];
  } catch (e) {
    return `no CRL seed: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** An SEV attestation report (0xd0 bytes) laid out as the ATTESTATION command writes it, signed by a fresh P-384 key. */
function sevReportSeed(): Buffer {
  const b = Buffer.alloc(ATTESTATION_REPORT_SIZE);
  b.fill(0x11, 0, 0x10);
  b.fill(0x22, 0x10, 0x30);
  b.writeUInt32LE(0x1, 0x30); // policy
  b.writeUInt32LE(0x1002, 0x34); // PEK
  b.writeUInt32LE(0x1, 0x38); // ECDSA SHA-256
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const sig = cryptoSign('sha256', b.subarray(0, 0x34), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  Buffer.from(sig.subarray(0, 48)).reverse().copy(b, 0x40);
  Buffer.from(sig.subarray(48)).reverse().copy(b, 0x88);
  return b;
}

const TARGETS: Target[] = [
  {
    name: 'sev-cert',
    what: 'SevCertificate.parse (SEV certificate format: PDH, PEK, OCA, CEK)',
    seeds: () => (fixturesPresent() ? sevCertSeeds() : NO_FIXTURES),
    run(input, rng) {
      if (rng.chance(16)) {
        // The same bytes as a public key file (sev verify --oca KEY, SPKI DER or PEM).
        try {
          toPublicKey(input);
        } catch (e) {
          if (!(e instanceof SevError)) throw e;
        }
      }
      const c = SevCertificate.parse(input);
      if (!c.toBuffer().equals(input)) throw new Error('parsed certificate does not re-encode to its bytes');
      c.body();
      void c.isUnsigned;
      void c.publicKey.asymmetricKeyType;
    },
  },
  {
    name: 'ca-cert',
    what: 'CaCertificate.parse / parseFirst (AMD CA format: ARK, ASK)',
    seeds: () => (fixturesPresent() ? caSeeds() : NO_FIXTURES),
    run(input) {
      try {
        const c = CaCertificate.parse(input);
        if (!c.toBuffer().equals(input)) throw new Error('parsed CA certificate does not re-encode to its bytes');
        c.body();
        void c.hash;
        void c.isSelfSigned;
      } finally {
        const first = CaCertificate.parseFirst(input);
        if (!first.cert.toBuffer().equals(input.subarray(0, first.length))) throw new Error('parseFirst length disagrees with its certificate');
      }
    },
  },
  {
    name: 'cert-blobs',
    what: 'splitAskArk, parseAskArk, splitPdhExportChain, splitChainFile (ask_ark and chain files)',
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      const askArk = CA_GENS.map((g) => Buffer.concat([fixture('amd', 'builtin', g, 'ask.cert'), fixture('amd', 'builtin', g, 'ark.cert')]));
      const chains = SEV_GENS.map((g) => Buffer.concat(['pdh', 'pek', 'oca', 'cek'].map((n) => fixture('amd', g, `${n}.cert`))));
      const full = SEV_GENS.map((g, i) => Buffer.concat([chains[i], askArk[CA_GENS.indexOf(g)]]));
      const exports = SEV_GENS.map((g) => Buffer.concat(['pek', 'oca', 'cek'].map((n) => fixture('amd', g, `${n}.cert`))));
      return [...askArk, ...chains, ...full, ...exports];
    },
    run(input) {
      // Each blob is one of these kinds: it counts as parsed when one of them takes it.
      let refused: unknown;
      let accepted = false;
      for (const f of [splitAskArk, parseAskArk, splitPdhExportChain, splitChainFile] as ((b: Buffer) => unknown)[]) {
        try {
          f(input);
          accepted = true;
        } catch (e) {
          if (!(e instanceof SevError)) throw e;
          refused = e;
        }
      }
      if (!accepted) throw refused;
    },
    maxLen: 16384,
  },
  {
    name: 'session-blob',
    what: 'parseSessionBlob, base64 (sev session / LAUNCH_START session files)',
    seeds: () => {
      const blobs = [0, 1, 0x5].map((policy) => buildSessionBlob(Buffer.alloc(48, policy + 1), policy).blob);
      return [...blobs, ...blobs.map((b) => Buffer.from(b.toString('base64') + '\n'))];
    },
    run(input) {
      const decoded = decodeBase64Strict(input.toString('latin1'));
      parseSessionBlob(decoded ?? input);
    },
  },
  {
    name: 'vmsa',
    what: 'Vmsa (a 4096-byte VMSA file: sev vmsa show/update)',
    seeds: () => (fixturesPresent() ? [fixture('sevctl', 'vmsa0.bin'), fixture('sevctl', 'vmsa1.bin')] : NO_FIXTURES),
    run(input) {
      const v = new Vmsa(input);
      v.toSevctlJson();
      v.fpuControl();
      if (!v.toBuffer().equals(input)) throw new Error('VMSA does not round-trip');
    },
    maxLen: 8192,
  },
  {
    name: 'ovmf',
    what: 'OvmfImage.parse (footer table, SEV metadata, reset block, hashes and secret areas)',
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      return [
        fixture('sevctl', 'OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9'),
        fixture('snp', 'measurement', 'ovmf_AmdSev_suffix.bin'),
        fixture('snp', 'measurement', 'ovmf_OvmfX64_suffix.bin'),
      ];
    },
    run(input) {
      const o = OvmfImage.parse(input);
      o.sevHashTableArea();
      o.sevSecretArea();
      o.gpa();
      if (o.hasFooterTable) {
        try {
          o.sevEsResetAddress();
        } catch (e) {
          if (!(e instanceof SevError)) throw e;
        }
        checkSevHashesSupport(o);
      }
    },
    maxLen: 16384,
  },
  {
    name: 'guid-table',
    what: 'the OVMF GUID (footer) table alone, and GUID text',
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      // The last 0x400 bytes of each OVMF: the footer table and the reset vector.
      return ['ovmf_AmdSev_suffix.bin', 'ovmf_OvmfX64_suffix.bin'].map((f) => fixture('snp', 'measurement', f).subarray(-0x400))
        .concat([Buffer.from('96b582de-1fb2-45f7-baea-a366c55a082d')]);
    },
    run(input) {
      if (input.length === 36 || input.length === 38) {
        const bytes = guidToBytes(input.toString('latin1'));
        if (!guidToBytes(guidToString(bytes)).equals(bytes)) throw new Error('GUID text does not round-trip');
        return;
      }
      const o = OvmfImage.parse(input);
      for (const [guid, data] of o.entries) {
        guidToBytes(guid);
        void data.length;
      }
    },
    maxLen: 4096,
  },
  {
    name: 'sev-report',
    what: 'the SEV attestation report (ATTESTATION, 0xd0 bytes): parseAttestationReport',
    seeds: () => [sevReportSeed(), sevReportSeed()],
    run(input) {
      const r = parseSevReport(input);
      void r.policy;
    },
  },
  {
    name: 'snp-report',
    what: 'the SEV-SNP attestation report: parse (each generation), serialize, JSON, text',
    seeds: () => (fixturesPresent() ? [fixture('snp', 'milan', 'report.bin'), fixture('snp', 'milan-go-sev-guest', 'report.bin')] : NO_FIXTURES),
    run(input, rng) {
      if (input.length >= 4 && rng.chance(2)) input.writeUInt32LE(2 + rng.below(5), 0);
      const r = parseSnpReport(input, { generation: rng.pick(SNP_GENS) });
      if (!serializeReport(r).equals(input)) throw new Error('report does not re-serialize to its bytes');
      JSON.stringify(reportToJSON(r));
      formatReport(r);
    },
    maxLen: 2048,
  },
  {
    name: 'x509',
    what: 'parseSnpCertificate + vcekExtensions (VCEK, ASK, ARK as DER)',
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      return [
        fixture('snp', 'milan', 'vcek.der'),
        fixture('snp', 'milan-go-sev-guest', 'vcek.der'),
        fixture('snp', 'turin', 'vcek.der'),
        ...derOfPem(fixture('snp', 'milan', 'cert_chain.pem')),
        ...derOfPem(fixture('snp', 'amd', 'genoa', 'ark.pem')),
      ];
    },
    run(input) {
      const c = parseSnpCertificate(input);
      void c.x509.subject;
      try {
        vcekExtensions(c);
      } catch (e) {
        if (!(e instanceof SevError)) throw e;
      }
    },
    maxLen: 8192,
  },
  {
    name: 'x509-pem',
    what: 'PEM certificate text: parseCertChainPem, parseSnpCertificate, pemCertificates',
    text: true,
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      return [fixture('snp', 'milan', 'cert_chain.pem'), fixture('snp', 'turin', 'cert_chain.pem'), fixture('snp', 'amd', 'milan', 'ark.pem')];
    },
    run(input) {
      pemCertificates(input);
      try {
        parseSnpCertificate(input.toString('latin1'));
      } catch (e) {
        if (!(e instanceof SevError)) throw e;
      }
      parseCertChainPem(input);
    },
    maxLen: 16384,
  },
  {
    name: 'crl',
    what: 'parseSnpCrl (a DER CRL, as KDS serves it)',
    seeds: crlSeed,
    run(input) {
      const crl = parseSnpCrl(input);
      for (const r of crl.revoked) void r.serial;
    },
    maxLen: 8192,
  },
  {
    name: 'id-block',
    what: 'parseIdBlock, parseIdAuth, parseSnpPublicKey (SNP ID_BLOCK and ID_AUTH_INFO)',
    seeds: () => {
      if (!fixturesPresent()) return NO_FIXTURES;
      const auth = fixture('snp', 'measurement', 'test_auth_block.bin');
      const block = buildIdBlock({ launchDigest: Buffer.alloc(48, 7), familyId: Buffer.alloc(16, 1), imageId: Buffer.alloc(16, 2), guestSvn: 3 });
      return [auth, block];
    },
    run(input, rng) {
      if (input.length <= 512) {
        parseIdBlock(input);
        return;
      }
      const a = parseIdAuth(input);
      // Key parsing is an EC point check in OpenSSL (~1 ms): one input in 16 gets it.
      if (rng.chance(16)) {
        parseSnpPublicKey(a.idKey);
        if (a.authorKey) parseSnpPublicKey(a.authorKey);
      }
    },
    maxLen: 4200,
  },
  {
    name: 'report-policy',
    what: 'parseReportPolicy (the --policy JSON file)',
    text: true,
    seeds: () => [
      Buffer.from(JSON.stringify({ measurement: 'aa'.repeat(48), host_data: '11'.repeat(32), report_data: '00'.repeat(64),
        family_id: '22'.repeat(16), minimum_guest_svn: 1, minimum_tcb: { snp: 8, microcode: 115 }, minimum_launch_tcb: '0x1b00000000000003',
        permit_provisional_firmware: false, guest_policy: { debug: false, smt: true, abi_minimum: '0.0' }, platform_info: { smt_en: true },
        vmpl: 0, maximum_vmpl: 0, minimum_build: 3, minimum_version: '1.52', signing_key: 'vcek' }, null, 2)),
      Buffer.from(JSON.stringify({ image_id: ['33'.repeat(16), '44'.repeat(16)], minimum_tcb: '0x1b00000000000003', signing_key: ['vcek', 'vlek'],
        author_key_en: true, minimum_version: '1.55' })),
    ],
    generate: mutateJson,
    run(input) {
      parseReportPolicy(input.toString('utf8'));
    },
    maxLen: 4096,
  },
];

// ---------------------------------------------------------------------------------------------
// Worker: runs one target

interface Job {
  target: string;
  runs: number;
  seconds: number;
  seed: number;
  slowMs: number;
  findingsDir: string;
  progress: SharedArrayBuffer;
}

interface Finding {
  kind: 'exception' | 'slow' | 'hang' | 'memory';
  signature: string;
  message: string;
  index: number;
  file?: string;
}

interface Result {
  target: string;
  inputs: number;
  parsed: number;
  refused: number;
  seconds: number;
  heapMb: number;
  findings: Finding[];
  skipped?: string;
}

function generate(t: Target, seeds: Buffer[], runSeed: number, index: number): { input: Buffer; rng: Rng } {
  const rng = new Rng(inputSeed(runSeed, t.name, index));
  const maxLen = t.maxLen ?? Math.max(...seeds.map((s) => s.length)) * 2 + 64;
  // Every seed once, unmutated, first.
  const input = index < seeds.length ? Buffer.from(seeds[index]) : (t.generate ?? (t.text ? mutateText : mutate))(rng, seeds, maxLen);
  return { input: Buffer.from(input), rng };
}

function saveInput(dir: string, target: string, signature: string, input: Buffer): string {
  fs.mkdirSync(dir, { recursive: true });
  const name = `${target}-${signature.replace(/[^A-Za-z0-9]+/g, '_').slice(0, 80)}.bin`;
  const file = path.join(dir, name);
  fs.writeFileSync(file, input);
  return file;
}

function signatureOf(e: unknown): string {
  const err = e as Error;
  const frame = (err?.stack ?? '').split('\n').find((l) => l.includes(' at ')) ?? '';
  return `${err?.name ?? typeof e}: ${String(err?.message ?? e).replace(/\d+/g, 'N').slice(0, 60)} @ ${frame.trim().replace(/:\d+\)?$/, '')}`;
}

function runJob(job: Job): Result {
  const t = TARGETS.find((x) => x.name === job.target)!;
  const seeds = t.seeds();
  const result: Result = { target: t.name, inputs: 0, parsed: 0, refused: 0, seconds: 0, heapMb: 0, findings: [] };
  if (typeof seeds === 'string') return { ...result, skipped: seeds };
  const progress = new Int32Array(job.progress);
  const seen = new Set<string>();
  const start = process.hrtime.bigint();
  const deadline = job.seconds > 0 ? start + BigInt(Math.round(job.seconds * 1e9)) : 0n;
  let heap = 0;
  for (let i = 0; i < job.runs; i++) {
    Atomics.store(progress, 0, i);
    const { input, rng } = generate(t, seeds, job.seed, i);
    const copy = Buffer.from(input);
    const t0 = process.hrtime.bigint();
    try {
      t.run(input, rng);
      result.parsed++;
    } catch (e) {
      if (e instanceof SevError) result.refused++;
      else {
        const sig = signatureOf(e);
        if (!seen.has(sig) && result.findings.length < 20) {
          seen.add(sig);
          const file = saveInput(job.findingsDir, t.name, sig, copy);
          result.findings.push({ kind: 'exception', signature: sig, message: (e as Error)?.stack?.split('\n').slice(0, 4).join('\n') ?? String(e), index: i, file });
        }
      }
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms > job.slowMs && !seen.has('slow')) {
      seen.add('slow');
      const file = saveInput(job.findingsDir, t.name, 'slow', copy);
      result.findings.push({ kind: 'slow', signature: 'slow', message: `one input took ${ms.toFixed(0)} ms (limit ${job.slowMs} ms)`, index: i, file });
    }
    result.inputs++;
    if ((i & 0x3ff) === 0) {
      heap = Math.max(heap, process.memoryUsage().heapUsed);
      if (deadline && process.hrtime.bigint() > deadline) break;
    }
  }
  result.seconds = Number(process.hrtime.bigint() - start) / 1e9;
  result.heapMb = Math.max(heap, process.memoryUsage().heapUsed) / 2 ** 20;
  return result;
}

if (!isMainThread) {
  parentPort!.postMessage(runJob(workerData as Job));
}

// ---------------------------------------------------------------------------------------------
// Main: one worker per target (a watchdog stops a stuck one), a table of rates, the verdict.

function runInWorker(job: Omit<Job, 'progress'>, hangMs: number, heapMb: number): Promise<Result> {
  const progress = new SharedArrayBuffer(4);
  const counter = new Int32Array(progress);
  return new Promise((resolve) => {
    const worker = new Worker(__filename, { workerData: { ...job, progress }, resourceLimits: { maxOldGenerationSizeMb: heapMb } });
    let last = -1;
    let stalled = 0;
    const fail = (kind: Finding['kind'], message: string) => { // eslint-disable-line prefer-const
      const index = Atomics.load(counter, 0);
      const t = TARGETS.find((x) => x.name === job.target)!;
      let file: string | undefined;
      try {
        file = saveInput(job.findingsDir, t.name, kind, generate(t, t.seeds() as Buffer[], job.seed, index).input);
      } catch (e) {
        message += ` (the input could not be regenerated: ${(e as Error).message})`;
      }
      resolve({ target: job.target, inputs: index, parsed: 0, refused: 0, seconds: 0, heapMb: 0,
        findings: [{ kind, signature: kind, message, index, file }] });
    };
    const timer = setInterval(() => {
      const now = Atomics.load(counter, 0);
      if (now !== last) {
        last = now;
        stalled = 0;
        return;
      }
      stalled += 250;
      if (stalled >= hangMs) {
        clearInterval(timer);
        void worker.terminate();
        fail('hang', `no progress for ${hangMs} ms on input ${now}`);
      }
    }, 250);
    worker.once('message', (r: Result) => {
      clearInterval(timer);
      resolve(r);
    });
    worker.once('error', (e) => {
      clearInterval(timer);
      const oom = (e as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
      fail(oom ? 'memory' : 'exception', oom ? `heap above ${heapMb} MB` : String(e?.stack ?? e));
    });
  });
}

const USAGE = `usage: npm run fuzz [-- OPTIONS]
  --short          a few seconds per target (CI); default: 1,000,000 inputs per target
  --runs N         inputs per target            --seconds S   time limit per target
  --only a,b       these targets (--list)       --seed N      the run's seed (inputs are reproducible)
  --jobs N         targets at a time            --findings D  where failing inputs are saved
  --slow-ms / --hang-ms / --heap-mb             limits per input, per stall, per worker heap
`;

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.includes('--list')) {
    for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(14)} ${t.what}\n`);
    return 0;
  }
  const short = args.includes('--short');
  const runs = Number(opt('--runs') ?? (short ? 10_000_000 : 1_000_000));
  const seconds = Number(opt('--seconds') ?? (short ? 3 : 0));
  const seed = Number(opt('--seed') ?? (short ? Date.now() % 1_000_000 : 1));
  const only = opt('--only')?.split(',');
  const findingsDir = path.resolve(opt('--findings') ?? path.join(ROOT, 'build', 'fuzz-findings'));
  const hangMs = Number(opt('--hang-ms') ?? 20_000);
  const slowMs = Number(opt('--slow-ms') ?? 2_000);
  const heapMb = Number(opt('--heap-mb') ?? 512);
  const unknown = only?.filter((n) => !TARGETS.some((t) => t.name === n)) ?? [];
  if (unknown.length) {
    process.stderr.write(`fuzz: unknown target ${unknown.join(', ')} (--list names them)\n`);
    return 2;
  }
  const targets = TARGETS.filter((t) => !only || only.includes(t.name));
  process.stdout.write(`fuzz: ${targets.length} targets, ${short ? `${seconds} s each (--short)` : `${runs.toLocaleString('en')} inputs each`}` +
    `, seed ${seed} (repeat with --seed ${seed}), fixtures ${fixturesDir()}\n`);
  process.stdout.write(`${'target'.padEnd(14)} ${'inputs'.padStart(11)} ${'parsed'.padStart(10)} ${'refused'.padStart(11)} ${'inputs/s'.padStart(9)} ${'heap MB'.padStart(8)}  findings\n`);
  const jobs = Math.max(1, Number(opt('--jobs') ?? 1));
  const t0 = Date.now();
  let findings = 0;
  let skipped = 0;
  let total = 0;
  // --jobs N: N targets at a time, each in its own worker; rows print in target order.
  const pending = targets.map((t) => ({ t, result: undefined as Promise<Result> | undefined }));
  const start = (i: number) => {
    const p = pending[i];
    if (p && !p.result) p.result = runInWorker({ target: p.t.name, runs, seconds, seed, slowMs, findingsDir }, hangMs, heapMb);
  };
  for (let i = 0; i < jobs; i++) start(i);
  for (let i = 0; i < pending.length; i++) {
    const t = pending[i].t;
    start(i);
    const r = await pending[i].result!;
    start(i + jobs);
    if (r.skipped) {
      skipped++;
      process.stdout.write(`${t.name.padEnd(14)} skipped: ${r.skipped}\n`);
      continue;
    }
    total += r.inputs;
    findings += r.findings.length;
    const rate = r.seconds ? Math.round(r.inputs / r.seconds) : 0;
    process.stdout.write(`${t.name.padEnd(14)} ${r.inputs.toLocaleString('en').padStart(11)} ${r.parsed.toLocaleString('en').padStart(10)} ` +
      `${r.refused.toLocaleString('en').padStart(11)} ${rate.toLocaleString('en').padStart(9)} ${r.heapMb.toFixed(0).padStart(8)}  ${r.findings.length || '-'}\n`);
    for (const f of r.findings) process.stdout.write(`  FINDING (${f.kind}) input #${f.index}: ${f.message}\n    saved as ${f.file}\n`);
  }
  const secs = (Date.now() - t0) / 1000;
  process.stdout.write(`fuzz: ${total.toLocaleString('en')} inputs in ${secs.toFixed(1)} s, ${findings} finding(s)${skipped ? `, ${skipped} target(s) skipped` : ''}\n`);
  if (skipped && (process.env.CI || !short)) {
    process.stdout.write('fuzz: a skipped target is a failure here (CI or a full run)\n');
    return 1;
  }
  return findings ? 1 : 0;
}

if (isMainThread) {
  main().then((code) => {
    process.exitCode = code;
  }, (e) => {
    process.stderr.write(`fuzz: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  });
}
