// SEV-SNP: attestation reports (and, as they come, VCEK/VLEK chains, KDS, measurement, ID blocks,
// the guest device). Pure TypeScript over node:crypto.
export * from './report';
