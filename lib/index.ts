// node-sev public API.
export * from './errors';
export * from './platform';
export * as certs from './certs';
export {
  SevCertificate,
  CaCertificate,
  verifyChain,
  formatChainReport,
  Usage,
  Algorithm,
  type ChainReport,
  type Generation,
} from './certs';
export { probe, type ProbeReport, type ProbeCheck, type ProbeLevel } from './platform/probe';
export * from './owner';
// A namespace, like certs: the SEV (owner) and SNP report parsers share names.
export * as snp from './snp';
export * from './launch';
export * from './kvm';
