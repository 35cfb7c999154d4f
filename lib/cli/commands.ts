// The registry of `sev` subcommands: names and summaries here, each command's module loaded only
// when it runs (start-up cost: `sev show version` loads the platform module, not the SNP, KDS,
// YAML, certificate and owner-side code the other commands use).
import type { Command } from './sev';

export interface CommandEntry {
  name: string;
  summary: string;
  load(): Command;
}

export const commands: readonly CommandEntry[] = [
  { name: 'export', summary: 'Export the SEV certificate chain (with --full, also the AMD ASK and ARK)', load: () => require('./export').exportCommand },
  { name: 'generate', summary: 'Generate a new self-signed OCA certificate and key', load: () => require('./ownership').generateCommand },
  { name: 'measurement', summary: 'Build or verify the expected SEV / SEV-ES launch measurement', load: () => require('./measurement').measurementCommand },
  { name: 'ok', summary: 'Probe the host for SEV support (CPU, BIOS, kernel, KVM, device, firmware)', load: () => require('./ok').okCommand },
  { name: 'provision', summary: 'Take ownership of the SEV platform with an OCA (PEK_CSR, sign, PEK_CERT_IMPORT)', load: () => require('./ownership').provisionCommand },
  { name: 'reset', summary: 'Reset the SEV platform (FACTORY_RESET): new keys, no owner', load: () => require('./ownership').resetCommand },
  { name: 'rotate', summary: 'Rotate the PDH (PDH_GEN)', load: () => require('./ownership').rotateCommand },
  { name: 'secret', summary: 'Build the LAUNCH_SECRET header and payload for OVMF secret injection', load: () => require('./secret').secretCommand },
  { name: 'session', summary: 'Generate a SEV launch session (GODH certificate, session blob, TEK, TIK)', load: () => require('./session').sessionCommand },
  { name: 'show', summary: 'Display information about the SEV platform', load: () => require('./show').showCommand },
  {
    name: 'snp',
    summary: 'SEV-SNP attestation: get reports, certificates and derived keys in a guest; display and verify reports, compute launch measurements, ID blocks and key digests',
    load: () => require('./snp').snpCommand,
  },
  { name: 'verify', summary: 'Verify the certificate chain (from the platform, or from files)', load: () => require('./ownership').verifyCommand },
  { name: 'vmsa', summary: 'Build, show or update an SEV-ES VMSA (initial vCPU state) file', load: () => require('./vmsa').vmsaCommand },
];
