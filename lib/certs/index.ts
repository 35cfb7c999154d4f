// Certificates: the SEV certificate format, AMD's CA format, chain verification, AMD's pinned
// root keys, and where ASK/ARK bytes come from (file, cache, AMD's servers).
export * from './constants';
export * from './keys';
export * from './sev-cert';
export * from './ca-cert';
export * from './anchors';
export * from './chain';
export * from './kds';
