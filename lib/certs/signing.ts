// The two signature schemes AMD certificates use, on node:crypto: RSASSA-PSS (MGF1 with the same
// digest, salt length = digest length — checked against AMD's published ARK/ASK and real CEKs)
// and ECDSA with the raw r‖s (IEEE P1363) encoding.
import { constants, sign, verify, type KeyObject } from 'node:crypto';

import { HASH_BYTES, type HashName } from './constants';

function pssOptions(key: KeyObject, hash: HashName) {
  return { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_BYTES[hash] };
}

/** RSA-PSS signature (big-endian, modulus-sized) of `data`. */
export function rsaPssSign(privateKey: KeyObject, hash: HashName, data: Uint8Array): Buffer {
  return sign(hash, data, pssOptions(privateKey, hash));
}

/** True when `signature` (big-endian) is a valid RSA-PSS signature of `data`; never throws. */
export function rsaPssVerify(publicKey: KeyObject, hash: HashName, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(hash, data, pssOptions(publicKey, hash), signature);
  } catch {
    return false;
  }
}

/** ECDSA signature of `data` as big-endian r and s, each the curve's scalar size. */
export function ecdsaSign(privateKey: KeyObject, hash: HashName, data: Uint8Array): { r: Buffer; s: Buffer } {
  const rs = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return { r: rs.subarray(0, rs.length / 2), s: rs.subarray(rs.length / 2) };
}

/** True when big-endian (r, s) is a valid ECDSA signature of `data`; never throws. */
export function ecdsaVerify(publicKey: KeyObject, hash: HashName, data: Uint8Array, r: Uint8Array, s: Uint8Array): boolean {
  try {
    return verify(hash, data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.concat([r, s]));
  } catch {
    return false;
  }
}
