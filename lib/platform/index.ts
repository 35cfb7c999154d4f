export { SevPlatform, SEV_CERT_SIZE, SEV_FW_BLOB_MAX_SIZE, DEFAULT_SEV_DEVICE } from './platform';
export * from './types';
