// SEV-SNP: attestation reports, the VCEK/VLEK certificate chains and report verification, and
// the launch measurement (and, as they come, KDS, ID blocks, the guest device). Pure TypeScript
// over node:crypto.
export * from './report';
export * from './certs';
export * from './verify';
export * from './crl';
export * from './kds';
export * from './measurement';
