// Where `sev export --full` gets the AMD CA chain (ASK, ARK) and an ASK-signed CEK. Filled in by
// the certificates work (lib/certs); until then --full reports that it needs a CA file.
export interface ResolvedCa {
  cek: Buffer;
  ask: Buffer;
  ark: Buffer;
  generation: string;
  source: string;
}

export async function resolveCaChain(_opts: {
  cek: Buffer;
  chipId: Buffer;
  caFile?: string;
  offline: boolean;
}): Promise<ResolvedCa> {
  throw new Error('export --full: the CA chain resolver is not built yet');
}
