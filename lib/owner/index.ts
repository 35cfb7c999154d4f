// The guest owner's toolkit: session, expected measurement, secret injection, VMSAs.
// Pure TypeScript over node:crypto; nothing here talks to a device.
export * from './kdf';
export * from './session';
export * from './measurement';
export * from './expected-measurement';
export * from './launch-digest';
export * from './sev-hashes';
export { FileDigest, digestFile, digestFileAsync, digestOf, DIGEST_READ_SIZE, type DigestAlgorithm, type DigestInput, type DigestFileOptions } from './file-digest';
export * from './ovmf';
export * from './guid';
export * from './guid-table';
export * from './secret';
export * from './vmsa';
export * from './vmsa-builder';
export { parseIntOrHex, readBase64OrPath, readBase64, decodeBase64Strict } from './inputs';
export * from './attestation';
