// `sev-emu`: run programs against the SEV firmware emulator (native/emu). The emulator library is
// preloaded into the program and answers /dev/sev (and KVM's SEV commands) through the kernel's
// own ABI, so unmodified programs — node, C clients, QEMU — work unchanged.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

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
  sev-emu ca [--state DIR] <file>     write the emulator's ASK‖ARK (what AMD's KDS serves as
                                      ask_ark_<gen>.cert) so a verifier can be told to trust it
  sev-emu lib                         print the path of the emulator library (for LD_PRELOAD)
  sev-emu info [--json]               what this machine offers: the host's /dev/kvm, the software
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
  fs.mkdirSync(state, { recursive: true, mode: 0o700 });
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
  if (values['host-snp']) env.SEV_EMU_HOST_SNP = '1';
  if (values['device-mode']) env.SEV_EMU_DEVICE_MODE = values['device-mode'];
  if (values['device-group']) env.SEV_EMU_DEVICE_GROUP = values['device-group'];

  try {
    if (verb === 'ca') {
      const out = positionals[1];
      if (!out) return fail('ca: output file required');
      // One firmware command makes a new state directory create its keys and CA.
      const code = await runChild([process.execPath, path.join(ROOT, 'bin', 'sev.js'), 'show', 'status', '--quiet'], env);
      if (code !== 0) return fail('could not initialise the emulator state');
      fs.copyFileSync(path.join(state, 'ask_ark.cert'), out);
      return 0;
    }
    if (verb !== 'run') return fail(`unknown command '${verb}'`);
    if (command.length === 0) return fail('run: nothing to run (usage: sev-emu run [options] -- <command> [args...])');
    return await runChild(command, env);
  } finally {
    if (tempState) fs.rmSync(tempState, { recursive: true, force: true });
  }
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

function info(library: string, json: boolean): number {
  const host = hostKvmUsable();
  const soft = softKvmUnavailable(library);
  const auto = host === null ? 'host' : soft === null ? 'soft' : 'none';
  const report = {
    library,
    hostKvm: host === null ? 'usable' : `not usable (${host})`,
    softKvm: soft === null ? 'available' : soft,
    kvmAuto: auto,
  };
  if (json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } else {
    process.stdout.write(`emulator library   ${report.library}\n` +
      `host /dev/kvm      ${report.hostKvm}\n` +
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
