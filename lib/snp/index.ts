// SEV-SNP: attestation reports, the VCEK/VLEK certificate chains and report verification, and
// the launch measurement, ID blocks, policy checks on reports (and, as they come, KDS, the
// guest device). Pure TypeScript over node:crypto.
export * from './report';
export * from './certs';
export * from './verify';
export * from './crl';
export * from './kds';
export * from './measurement';
export * from './explain';
export * from './id-block';
export * from './policy';
export * from './cert-table';
export * from './guest';
export * from './tsm';
