// `sev-emu`: run programs against the SEV firmware emulator (native/emu). The emulator library is
// preloaded into the program and answers /dev/sev (and KVM's SEV commands) through the kernel's
// own ABI, so unmodified programs — node, C clients, QEMU — work unchanged.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

import { fileErrorText } from '../errors';
import { makeOutputDir, writeOutputFile } from '../output-files';
import { startKdsChild, type KdsChild } from './emu-kds';

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** Where node-gyp leaves the emulator library (make generator layouts differ by version). */
export function emulatorLibrary(): string {
  const candidates = [
    process.env.SEV_EMU_LIBRARY,
    path.join(ROOT, 'build', 'Release', 'sevemu.so'),
    path.join(ROOT, 'build', 'Release', 'lib.target', 'sevemu.so'),
  ].filter((p): p is string => Boolean(p));
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`emulator library not found (looked in ${candidates.join(', ')}); run \`npm run build\``);
  }
  return found;
}

/**
 * LD_PRELOAD for a program run on the emulator: the library, then what the caller preloads. A
 * sanitizer build of the library (`npm run test:sanitize`) needs its runtime first in the process's
 * library list: SEV_EMU_PRELOAD names such libraries (e.g. libasan.so), and sanitizer runtimes
 * already in LD_PRELOAD stay in front too. SEV_EMU_PRELOAD survives callers that drop LD_PRELOAD
 * to leave an emulator.
 */
export function preloadWith(library: string, env: NodeJS.ProcessEnv = process.env): string {
  const split = (v: string | undefined) => (v ?? '').split(/[: ]/).filter(Boolean);
  const existing = split(env.LD_PRELOAD);
  const sanitizer = (p: string) => /^lib[a-z]*san\.so/.test(path.basename(p));
  const first = [...split(env.SEV_EMU_PRELOAD), ...existing.filter(sanitizer)];
  const rest = existing.filter((p) => !sanitizer(p) && p !== library);
  return [...new Set([...first, library, ...rest])].join(':');
}

export function defaultStateDir(): string {
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(base, 'node-sev', 'emu');
}

const GENERATIONS = ['naples', 'rome', 'milan', 'genoa', 'turin'];
const KVM_MODES = ['auto', 'host', 'soft'];

const HELP = `sev-emu — run programs against the SEV firmware emulator

Usage:
  sev-emu run [options] -- <command> [args...]
  sev-emu ca [--state DIR] [--snp] <file>   write the emulator's ASK‖ARK (what AMD serves as
                                      ask_ark_<gen>.cert; with --snp the X.509 ASK and ARK, PEM,
                                      as KDS's cert_chain) so a verifier can be told to trust it
  sev-emu kds [--state DIR] [--kds-port N] [--kds-rate-limit N]
                                      serve the emulated AMD KDS on loopback (VCEKs, cert_chain,
                                      CRL, SEV CEKs, ask_ark) for the state directory's platform
  sev-emu lib                         print the path of the emulator library (for LD_PRELOAD)
  sev-emu info [--json]               what this machine offers: the host's /dev/kvm, its KVM module
                                      (kvm_amd, kvm_intel, kvm_pvm) and CPU vendor, the software
                                      KVM (Unicorn), and which one --kvm auto picks

Options for run:
  --state DIR         persistent firmware state (keys, owner, chip id); default
                      ${defaultStateDir()}
  --temp-state        use a fresh state directory, removed afterwards
  --generation GEN    naples | rome | milan | genoa | turin (applies when the state is created)
  --fw MAJOR.MINOR.BUILD   firmware version (applies when the state is created)
  --sockets N         1 or 2 (GET_ID length; applies when the state is created)
  --uninit            the platform boots UNINIT instead of INIT (applies when the state is created)
  --host-snp          the host enabled SEV-SNP: the firmware's SNP is initialized at boot, so the
                      SNP platform commands work (Milan and later; applies when the state is
                      created). KVM cannot create SNP VMs yet, so kvm_amd's sev_snp stays N.
  --device-mode MODE  permissions of the emulated /dev/sev (octal; default 0600, root only, as the
                      kernel creates it)
  --device-group GROUP  its group (name or gid; default root), e.g. 0660 and kvm as a udev rule
  --kvm MODE          who answers /dev/kvm (also SEV_EMU_KVM):
                        auto  the host's /dev/kvm when it opens, else the software KVM (default)
                        host  the host's /dev/kvm; SEV emulated on top, guest memory plaintext
                        soft  the software KVM (Unicorn >= 2.1): guests run anywhere, with
                              encrypted memory and SEV-ES protected state
                      --trace logs which one answered; 'sev-emu info' says which auto picks
  --fault RULES       fault injection, e.g. PEK_GEN@2=INVALID_PLATFORM_STATE,GET_ID2@1=errno:ENOMEM
  --trace             log every emulated command to stderr
  --kds               start the emulated KDS on loopback for the command, and tell the command
                      about it: SEV_KDS_URL (where \`sev\` fetches VCEKs, CEKs, ask_ark), SEV_TRUST_ARK
                      (the emulated ARK's fingerprint: \`sev\` trusts it because sev-emu said so)
                      and SEV_CACHE_DIR (a cache inside the state directory, apart from AMD's)
  --kds-port N        its port (default: a free one); --kds-rate-limit N: requests per second
                      before it answers 429 with Retry-After, as KDS does (default 20, 0 = none)
  --guest             the command runs inside an SEV-SNP guest of the emulated platform: it gets
                      /dev/sev-guest and configfs-tsm (/sys/kernel/config/tsm/report), whose
                      reports are signed by the platform's VCEK (implies --host-snp for a new state)
  --guest-measurement HEX  the guest's launch measurement (48 bytes; default zeros), e.g. from
                      \`sev snp measure\`; --guest-policy N (default 0x30000), --guest-host-data HEX
                      (32 bytes), --guest-family-id HEX / --guest-image-id HEX (16 bytes),
                      --guest-svn N, --guest-vmpl N (the VMPL the guest kernel runs at, 0-3),
                      --guest-id-key-digest HEX / --guest-author-key-digest HEX (48 bytes),
                      --guest-certs chain|none (whether extended reports carry VCEK, ASK, ARK),
                      --guest-features N (the VMSA's SEV_FEATURES, as SEV_STATUS shows it; default 1)

The exit code is the command's.`;

export async function main(argv: string[]): Promise<number> {
  const sep = argv.indexOf('--');
  const own = sep >= 0 ? argv.slice(0, sep) : argv;
  const command = sep >= 0 ? argv.slice(sep + 1) : [];
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      options: {
        state: { type: 'string' },
        'temp-state': { type: 'boolean' },
        generation: { type: 'string' },
        fw: { type: 'string' },
        sockets: { type: 'string' },
        fault: { type: 'string' },
        trace: { type: 'boolean' },
        kvm: { type: 'string' },
        json: { type: 'boolean' },
        uninit: { type: 'boolean' },
        'host-snp': { type: 'boolean' },
        'device-mode': { type: 'string' },
        'device-group': { type: 'string' },
        snp: { type: 'boolean' },
        kds: { type: 'boolean' },
        'kds-port': { type: 'string' },
        'kds-rate-limit': { type: 'string' },
        guest: { type: 'boolean' },
        'guest-measurement': { type: 'string' },
        'guest-policy': { type: 'string' },
        'guest-host-data': { type: 'string' },
        'guest-family-id': { type: 'string' },
        'guest-image-id': { type: 'string' },
        'guest-svn': { type: 'string' },
        'guest-vmpl': { type: 'string' },
        'guest-id-key-digest': { type: 'string' },
        'guest-author-key-digest': { type: 'string' },
        'guest-certs': { type: 'string' },
        'guest-features': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    process.stderr.write(`sev-emu: ${(e as Error).message}\nRun sev-emu --help for usage.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const verb = positionals[0];
  if (values.help || !verb) {
    process.stdout.write(HELP + '\n');
    return verb || values.help ? 0 : 2;
  }
  const fail = (msg: string) => {
    process.stderr.write(`sev-emu: ${msg}\n`);
    return 2;
  };
  if (values.generation && !GENERATIONS.includes(values.generation)) {
    return fail(`--generation must be one of ${GENERATIONS.join(', ')}`);
  }
  if (values.fw && !/^\d+\.\d+\.\d+$/.test(values.fw)) return fail('--fw must look like 1.55.21');
  if (values.sockets && !['1', '2'].includes(values.sockets)) return fail('--sockets must be 1 or 2');
  if (values['device-mode'] && !/^0?[0-7]{3}$/.test(values['device-mode'])) return fail('--device-mode must be an octal mode such as 0660');
  if (values['host-snp'] && values.generation && ['naples', 'rome'].includes(values.generation)) {
    return fail(`--host-snp: ${values.generation} has no SEV-SNP`);
  }
  if (values.kvm && !KVM_MODES.includes(values.kvm)) return fail(`--kvm must be one of ${KVM_MODES.join(', ')}`);
  let guestEnv: NodeJS.ProcessEnv;
  let kdsOptions: { port?: number; rateLimit?: number };
  try {
    guestEnv = guestEnvironment(values);
    kdsOptions = kdsOptionsFrom(values);
  } catch (e) {
    return fail((e as Error).message);
  }
  if (values.guest && values.generation && ['naples', 'rome'].includes(values.generation)) {
    return fail(`--guest: ${values.generation} has no SEV-SNP`);
  }

  let library: string;
  try {
    library = emulatorLibrary();
  } catch (e) {
    return fail((e as Error).message);
  }
  if (verb === 'lib') {
    process.stdout.write(library + '\n');
    return 0;
  }
  if (verb === 'info') return info(library, Boolean(values.json));
  const kvmMode = values.kvm ?? process.env.SEV_EMU_KVM ?? 'auto';
  if (verb === 'run' && kvmMode === 'soft') {
    const why = softKvmUnavailable(library);
    if (why) return fail(why);
  }

  const tempState = values['temp-state'] ? fs.mkdtempSync(path.join(os.tmpdir(), 'sev-emu-')) : undefined;
  const state = tempState ?? values.state ?? process.env.SEV_EMU_STATE ?? defaultStateDir();
  try {
    makeStateDir(state);
  } catch (e) {
    if (tempState) fs.rmSync(tempState, { recursive: true, force: true });
    return fail((e as Error).message);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SEV_EMU_STATE: path.resolve(state),
    LD_PRELOAD: preloadWith(library),
  };
  if (values.generation) env.SEV_EMU_GENERATION = values.generation;
  if (values.fw) env.SEV_EMU_FW = values.fw;
  if (values.sockets) env.SEV_EMU_SOCKETS = values.sockets;
  if (values.fault) env.SEV_EMU_FAULT = values.fault;
  if (values.trace) env.SEV_EMU_TRACE = '1';
  env.SEV_EMU_KVM = kvmMode;
  if (values.uninit) env.SEV_EMU_PLATFORM_STATE = 'uninit';
  if (values['host-snp'] || values.guest) env.SEV_EMU_HOST_SNP = '1';
  Object.assign(env, guestEnv);
  if (values['device-mode']) env.SEV_EMU_DEVICE_MODE = values['device-mode'];
  if (values['device-group']) env.SEV_EMU_DEVICE_GROUP = values['device-group'];

  let kds: KdsChild | undefined;
  try {
    if (verb === 'ca') {
      const out = positionals[1];
      if (!out) return fail('ca: output file required');
      if (values.snp) {
        kds = await startKdsChild(env, { rateLimit: 0 });
        if (!kds.info.product) return fail(`ca --snp: the emulated ${kds.info.generation} has no SEV-SNP`);
        const chain = await fetchText(`${kds.url}/vcek/v1/${kds.info.product}/cert_chain`);
        writeOutputFile('sev-emu ca', out, Buffer.from(chain));
        return 0;
      }
      // One firmware command makes a new state directory create its keys and CA.
      const code = await runChild([process.execPath, path.join(ROOT, 'bin', 'sev.js'), 'show', 'status', '--quiet'], env);
      if (code !== 0) return fail('could not initialise the emulator state');
      writeOutputFile('sev-emu ca', out, fs.readFileSync(path.join(state, 'ask_ark.cert')));
      return 0;
    }
    if (verb === 'kds') {
      kds = await startKdsChild(env, { ...kdsOptions, log: true });
      process.stdout.write(`sev-emu kds: ${kds.info.generation} platform of ${env.SEV_EMU_STATE}\n` +
        `serving ${kds.url} (ARK SPKI SHA-256 ${kds.info.arkFingerprint}); Ctrl-C stops\n`);
      const child = kds.child;
      await new Promise<void>((resolve) => {
        const stop = () => child.kill('SIGTERM');
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        child.once('exit', () => resolve());
      });
      return 0;
    }
    if (verb !== 'run') return fail(`unknown command '${verb}'`);
    if (command.length === 0) return fail('run: nothing to run (usage: sev-emu run [options] -- <command> [args...])');
    if (values.kds) {
      kds = await startKdsChild(env, kdsOptions);
      env.SEV_KDS_URL = kds.url;
      env.SEV_TRUST_ARK = [kds.info.arkFingerprint, process.env.SEV_TRUST_ARK].filter(Boolean).join(',');
      env.SEV_CACHE_DIR = path.join(env.SEV_EMU_STATE!, 'kds-cache');
    }
    return await runChild(command, env);
  } catch (e) {
    return fail((e as Error).message);
  } finally {
    await kds?.stop();
    if (tempState) fs.rmSync(tempState, { recursive: true, force: true });
  }
}

/** mkdir -p of the state directory, checked usable; a problem is one line naming it. */
function makeStateDir(dir: string): void {
  const full = path.resolve(dir);
  makeOutputDir(`--state ${dir}`, full, 0o700);
  let ok = false;
  try {
    ok = fs.statSync(full).isDirectory();
  } catch {
    // not there after all
  }
  if (!ok) throw new Error(`--state ${dir}: not a directory`);
  try {
    fs.accessSync(full, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (e) {
    throw new Error(`--state ${dir}: ${fileErrorText('use', full, e)}`);
  }
}

const HEX_SIZES: Record<string, number> = {
  'guest-measurement': 48,
  'guest-host-data': 32,
  'guest-family-id': 16,
  'guest-image-id': 16,
  'guest-id-key-digest': 48,
  'guest-author-key-digest': 48,
};

/** The SEV_EMU_GUEST* variables for --guest and its --guest-* options (checked here: the emulator only logs). */
function guestEnvironment(values: Record<string, unknown>): NodeJS.ProcessEnv {
  const given = Object.keys(values).filter((k) => k.startsWith('guest-') && values[k] !== undefined);
  if (!values.guest) {
    if (given.length) throw new Error(`--${given[0]} needs --guest`);
    return {};
  }
  const env: NodeJS.ProcessEnv = { SEV_EMU_GUEST: '1' };
  const name = (option: string) => `SEV_EMU_${option.replace(/-/g, '_').toUpperCase()}`;
  for (const [option, bytes] of Object.entries(HEX_SIZES)) {
    const v = values[option] as string | undefined;
    if (v === undefined) continue;
    const hex = v.replace(/^0x/i, '');
    if (!new RegExp(`^[0-9a-fA-F]{${2 * bytes}}$`).test(hex)) throw new Error(`--${option} must be ${bytes} bytes in hex (${2 * bytes} digits)`);
    env[name(option)] = hex;
  }
  const integer = (option: string, max: bigint) => {
    const v = values[option] as string | undefined;
    if (v === undefined) return;
    if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(v) || BigInt(v) > max) throw new Error(`--${option} must be a number from 0 to ${max}`);
    env[name(option)] = String(BigInt(v));
  };
  integer('guest-policy', 0xffffffffffffffffn);
  integer('guest-svn', 0xffffffffn);
  integer('guest-vmpl', 3n);
  integer('guest-features', 0xffffffffffffffffn);
  const certs = values['guest-certs'] as string | undefined;
  if (certs !== undefined && certs !== 'chain' && certs !== 'none') throw new Error('--guest-certs must be chain or none');
  if (certs) env.SEV_EMU_GUEST_CERTS = certs;
  return env;
}

function kdsOptionsFrom(values: Record<string, unknown>): { port?: number; rateLimit?: number } {
  const number = (option: string, max: number) => {
    const v = values[option] as string | undefined;
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) > max) throw new Error(`--${option} must be a number from 0 to ${max}`);
    return Number(v);
  };
  return { port: number('kds-port', 65535), rateLimit: number('kds-rate-limit', 1_000_000) };
}

async function fetchText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** Why the software KVM cannot run here (one line, with what to install), or null. */
function softKvmUnavailable(library: string): string | null {
  const lib = path.join(ROOT, 'dist', 'lib', 'native.js');
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(lib)}).native.softkvmUnavailable() ?? '')`], {
    encoding: 'utf8',
    env: { ...process.env, LD_PRELOAD: preloadWith(library), SEV_EMU_STATE: os.tmpdir() },
  });
  if (r.status !== 0) return `cannot check the software KVM: ${r.stderr.trim().split('\n')[0]}`;
  return r.stdout.trim() || null;
}

function hostKvmUsable(): string | null {
  try {
    fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error';
  }
}

/**
 * The x86 KVM vendor modules; the one loaded implements the host's /dev/kvm, and its behaviour
 * differs where the hardware does (VM-entry checks, VMMCALL vs VMCALL, interrupt windows):
 * kvm_amd (SVM), kvm_intel (VMX), kvm_pvm (PVM, paging-based and without hardware
 * virtualization: it runs on any x86-64 CPU, also inside a VM, and emulates what is not 64-bit
 * code).
 */
const KVM_VENDOR_MODULES = ['kvm_amd', 'kvm_intel', 'kvm_pvm'];

/** The KVM vendor module(s) loaded on the host (/sys/module), joined by '+', or null. */
function hostKvmModule(): string | null {
  const loaded = KVM_VENDOR_MODULES.filter((m) => fs.existsSync(path.join('/sys/module', m)));
  return loaded.length > 0 ? loaded.join('+') : null;
}

/** The host CPU's vendor as /proc/cpuinfo names it (GenuineIntel, AuthenticAMD, ...), or null. */
function hostCpuVendor(): string | null {
  try {
    return /^vendor_id\s*:\s*(\S+)/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

function info(library: string, json: boolean): number {
  // Facts about the host, not the emulator's: inside `sev-emu run` the emulator answers /dev/kvm
  // and /proc/cpuinfo (the emulated EPYC), so ask again from a process without it.
  if ((process.env.LD_PRELOAD ?? '').split(/[: ]/).some((p) => p === library || path.basename(p) === path.basename(library))) {
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    const r = spawnSync(process.execPath, [path.join(ROOT, 'bin', 'sev-emu.js'), 'info', ...(json ? ['--json'] : [])], { stdio: 'inherit', env });
    return r.status ?? 1;
  }
  const host = hostKvmUsable();
  const soft = softKvmUnavailable(library);
  const auto = host === null ? 'host' : soft === null ? 'soft' : 'none';
  const report = {
    library,
    hostKvm: host === null ? 'usable' : `not usable (${host})`,
    hostKvmModule: hostKvmModule(),
    hostCpuVendor: hostCpuVendor(),
    softKvm: soft === null ? 'available' : soft,
    kvmAuto: auto,
  };
  if (json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    process.stdout.write(`emulator library   ${report.library}\n` +
      `host /dev/kvm      ${report.hostKvm}\n` +
      `host KVM module    ${report.hostKvmModule ?? 'none loaded'}\n` +
      `host CPU vendor    ${report.hostCpuVendor ?? 'unknown'}\n` +
      `software KVM       ${report.softKvm}\n` +
      `--kvm auto uses    ${auto === 'none' ? 'nothing: neither is available' : auto}\n`);
  }
  return auto === 'none' ? 1 : 0;
}

function runChild(command: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    signals.forEach((s) => process.on(s, forward));
    const done = (code: number) => {
      signals.forEach((s) => process.off(s, forward));
      resolve(code);
    };
    child.on('error', (e) => {
      process.stderr.write(`sev-emu: cannot run ${command[0]}: ${e.message}\n`);
      done(127);
    });
    child.on('exit', (code, signal) => done(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
