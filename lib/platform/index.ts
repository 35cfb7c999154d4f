export { SevPlatform, SEV_FW_BLOB_MAX_SIZE, DEFAULT_SEV_DEVICE } from './platform';
export { SEV_CERT_SIZE } from '../certs/sev-cert';
export * from './ownership';
export * from './types';
