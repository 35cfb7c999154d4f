// `sev secret build`: the LAUNCH_SECRET packet carrying OVMF's secret table, with sevctl's flags
// and files: the 52-byte header and the encrypted payload are written, in binary, to the two
// positional paths.

import { SevArgumentError } from '../errors';
import { writeOutputFiles } from '../output-files';
import { guidToBytes } from '../owner/guid';
import { readBase64, readBase64OrPath, readFileArg } from '../owner/inputs';
import { buildLaunchSecret, type SecretEntry } from '../owner/secret';
import { toJson, UsageError } from './output';
import type { Command } from './sev';

const COMMAND = 'secret';

/** `GUID:PATH` (split at the first colon, as sevctl does). */
function parseSecretArg(arg: string): SecretEntry {
  const colon = arg.indexOf(':');
  if (colon < 0) throw new SevArgumentError(COMMAND, `--secret '${arg}': expected GUID:PATH`);
  return {
    guid: guidToBytes(arg.slice(0, colon), `--secret '${arg}'`),
    data: readFileArg(COMMAND, '--secret', arg.slice(colon + 1)),
  };
}

export const secretCommand: Command = {
  name: 'secret',
  usage: `secret build --tik PATH|BASE64 --tek PATH|BASE64 --launch-measure-blob PATH|BASE64
                        --secret GUID:PATH [--secret GUID:PATH ...] [--iv BASE64] HEADER-FILE PAYLOAD-FILE

The secrets go into OVMF's secret table (GUID 1e74f542-71dd-4d66-963e-ef4287ff173b), encrypted
with the TEK and MACed with the TIK over the launch measurement. --iv fixes the IV (testing only;
it is random otherwise).`,
  options: {
    tik: { type: 'string' },
    tek: { type: 'string' },
    'launch-measure-blob': { type: 'string' },
    iv: { type: 'string' },
    secret: { type: 'string', multiple: true },
  },
  async run(ctx, { values, positionals }) {
    const [verb, headerFile, payloadFile, ...extra] = positionals;
    if (verb !== 'build') throw new UsageError(`${COMMAND}: expected 'build'${verb ? `, got '${verb}'` : ''}`);
    if (!headerFile || !payloadFile) throw new UsageError(`${COMMAND} build: HEADER-FILE and PAYLOAD-FILE are required`);
    if (extra.length > 0) throw new UsageError(`${COMMAND} build: unexpected argument '${extra[0]}'`);
    for (const name of ['tik', 'tek', 'launch-measure-blob']) {
      if (values[name] === undefined) throw new UsageError(`${COMMAND} build: --${name} is required`);
    }
    const secrets = (values.secret as string[] | undefined) ?? [];
    if (secrets.length === 0) throw new UsageError(`${COMMAND} build: at least one --secret GUID:PATH is required`);

    const measureBlob = readBase64OrPath(COMMAND, '--launch-measure-blob', values['launch-measure-blob'] as string);
    if (measureBlob.length !== 48 && measureBlob.length !== 32) {
      throw new SevArgumentError(COMMAND, `--launch-measure-blob must be the 48-byte LAUNCH_MEASURE blob (or the 32-byte measurement), got ${measureBlob.length} bytes`);
    }
    const packet = buildLaunchSecret({
      tik: readBase64OrPath(COMMAND, '--tik', values.tik as string, 16),
      tek: readBase64OrPath(COMMAND, '--tek', values.tek as string, 16),
      measurement: measureBlob,
      secrets: secrets.map(parseSecretArg),
      iv: values.iv === undefined ? undefined : readBase64(COMMAND, '--iv', values.iv as string, 16),
    });
    writeOutputFiles(COMMAND, [{ path: headerFile, data: packet.header }, { path: payloadFile, data: packet.ciphertext }]);
    if (ctx.json) {
      ctx.out(toJson({
        headerFile,
        payloadFile,
        header: packet.header.toString('base64'),
        payload: packet.ciphertext.toString('base64'),
        payloadLength: packet.ciphertext.length,
      }));
    } else {
      ctx.out(`Wrote header to: ${headerFile}`);
      ctx.out(`Wrote payload to: ${payloadFile}`);
    }
    return 0;
  },
};
