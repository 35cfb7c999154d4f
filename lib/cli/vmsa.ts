// `sev vmsa build|show|update`: SEV-ES initial vCPU state pages, compatible with sevctl's VMSA
// files (4096 bytes) and its `vmsa show` JSON.

import { SevArgumentError } from '../errors';
import { writeOutputFile } from '../output-files';
import { parseIntOrHex, readFileArg } from '../owner/inputs';
import { OvmfImage } from '../owner/ovmf';
import { Vmsa, VMSA_PAGE_SIZE } from '../owner/vmsa';
import { applyVmsaOptions, buildVmsa, type VmsaBuildOptions } from '../owner/vmsa-builder';
import { parseUserspace } from './measurement';
import { toJson, UsageError, type CliContext } from './output';
import type { Command } from './sev';

const COMMAND = 'vmsa';
type Values = Record<string, unknown>;

function readVmsa(path: string): Vmsa {
  const page = readFileArg(COMMAND, 'FILE', path);
  if (page.length !== VMSA_PAGE_SIZE) throw new SevArgumentError(COMMAND, `${path}: expected VMSA length ${VMSA_PAGE_SIZE}, was ${page.length}`);
  return new Vmsa(page);
}

function buildOptions(verb: string, v: Values): VmsaBuildOptions {
  if (v.cpu === undefined) throw new UsageError(`${COMMAND} ${verb}: --cpu is required`);
  if (v.userspace === undefined) throw new UsageError(`${COMMAND} ${verb}: --userspace qemu|krun is required`);
  const num = (name: string, max: number) =>
    v[name] === undefined ? undefined : parseIntOrHex(COMMAND, `--${name}`, v[name] as string, max);
  const cpu = num('cpu', 0xffffffff)!;
  const userspace = parseUserspace(v.userspace as string, COMMAND);
  // QEMU's APs start at OVMF's SEV-ES reset address: without the firmware the VMSA would hold
  // the BSP's reset vector and measure as no real guest does.
  if (cpu > 0 && userspace === 'qemu' && v.firmware === undefined) {
    throw new UsageError(`${COMMAND} ${verb}: --cpu ${cpu} is an AP, which starts at OVMF's SEV-ES reset address: give --firmware OVMF.fd`);
  }
  const firmware = v.firmware === undefined ? undefined : OvmfImage.parse(readFileArg(COMMAND, '--firmware', v.firmware as string));
  return {
    cpu,
    family: num('family', 0xfff),
    model: num('model', 0xff),
    stepping: num('stepping', 0xf),
    userspace,
    firmware,
  };
}

function write(ctx: CliContext, verb: string, path: string, vmsa: Vmsa, o: VmsaBuildOptions): number {
  writeOutputFile(COMMAND, path, vmsa.page);
  if (ctx.json) {
    ctx.out(toJson({ file: path, verb, cpu: o.cpu, userspace: o.userspace, rip: vmsa.get('rip'), csBase: vmsa.segment('cs').base, rdx: vmsa.get('rdx') }));
  }
  // sevctl prints nothing on success.
  return 0;
}

export const vmsaCommand: Command = {
  name: 'vmsa',
  usage: `vmsa build  FILE --cpu N --userspace qemu|krun [--family N --model N --stepping N] [--firmware PATH]
       sev vmsa update FILE --cpu N --userspace qemu|krun [--family N --model N --stepping N] [--firmware PATH]
       sev vmsa show   FILE

build writes a 4096-byte page with the reset state KVM and the VMM give vCPU N; with QEMU, an
AP (N > 0) starts at OVMF's SEV-ES reset address (--firmware). update changes the CPU signature
and reset address of an existing file. show prints the fields as JSON, as sevctl does.`,
  options: {
    cpu: { type: 'string' },
    family: { type: 'string' },
    model: { type: 'string' },
    stepping: { type: 'string' },
    firmware: { type: 'string' },
    userspace: { type: 'string' },
  },
  async run(ctx, { values, positionals }) {
    const [verb, file, ...extra] = positionals;
    if (!['build', 'show', 'update'].includes(verb)) {
      throw new UsageError(`${COMMAND}: expected 'build', 'show' or 'update'${verb ? `, got '${verb}'` : ''}`);
    }
    if (!file) throw new UsageError(`${COMMAND} ${verb}: FILE is required`);
    if (extra.length > 0) throw new UsageError(`${COMMAND} ${verb}: unexpected argument '${extra[0]}'`);
    if (verb === 'show') {
      // The sevctl format is already JSON (u64 values as exact integers), so --json prints the same.
      ctx.out(readVmsa(file).toSevctlJson());
      return 0;
    }
    const o = buildOptions(verb, values);
    const vmsa = verb === 'build' ? buildVmsa(o) : applyVmsaOptions(readVmsa(file), o);
    return write(ctx, verb, file, vmsa, o);
  },
};
