#include "crypto.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <algorithm>

namespace sevemu::crypto {

void fail(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  throw CryptoError(what + (e ? std::string(": ") + buf : ""));
}

namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

Bytes bn_to_be(const BIGNUM* bn, size_t width) {
  Bytes out(width);
  if (BN_bn2binpad(bn, out.data(), int(width)) < 0) fail("BN_bn2binpad");
  return out;
}

Bytes get_bn_param(EVP_PKEY* key, const char* name, size_t width) {
  BIGNUM* bn = nullptr;
  if (!EVP_PKEY_get_bn_param(key, name, &bn)) fail("EVP_PKEY_get_bn_param");
  Bn holder(bn);
  if (width == 0) width = size_t(BN_num_bytes(bn));
  return bn_to_be(bn, width);
}

Pkey from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  OSSL_PARAM_BLD_free(bld);
  if (!params) fail("OSSL_PARAM_BLD_to_param");
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  bool ok = ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) > 0;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!ok) {
    ERR_clear_error();
    return nullptr;
  }
  return Pkey(key);
}

}  // namespace

Bytes random_bytes(size_t n) {
  Bytes out(n);
  if (n && RAND_bytes(out.data(), int(n)) != 1) fail("RAND_bytes");
  return out;
}

Pkey generate_p384() {
  EVP_PKEY* k = EVP_EC_gen("P-384");
  if (!k) fail("EVP_EC_gen");
  return Pkey(k);
}

Pkey generate_rsa(unsigned bits) {
  EVP_PKEY* k = EVP_RSA_gen(bits);
  if (!k) fail("EVP_RSA_gen");
  return Pkey(k);
}

std::string private_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (!bio || !PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr)) {
    BIO_free(bio);
    fail("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, size_t(len));
  BIO_free(bio);
  return out;
}

Pkey private_from_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), int(pem.size()));
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (!key) fail("PEM_read_bio_PrivateKey");
  return Pkey(key);
}

void ec_public_xy(EVP_PKEY* key, Bytes& x_be, Bytes& y_be) {
  x_be = get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, 48);
  y_be = get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, 48);
}

Pkey ec_public_from_xy(const Bytes& x_be, const Bytes& y_be) {
  if (x_be.size() != 48 || y_be.size() != 48) return nullptr;
  Bytes point{0x04};
  point.insert(point.end(), x_be.begin(), x_be.end());
  point.insert(point.end(), y_be.begin(), y_be.end());
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld) fail("OSSL_PARAM_BLD_new");
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  Pkey key = from_params("EC", bld);
  if (!key) return nullptr;
  // fromdata does not insist that the point is on the curve; the firmware would.
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr);
  bool ok = ctx && EVP_PKEY_public_check(ctx) == 1;
  EVP_PKEY_CTX_free(ctx);
  ERR_clear_error();
  return ok ? std::move(key) : nullptr;
}

Bytes p384_order() {
  EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_secp384r1);
  if (!group) fail("EC_GROUP_new_by_curve_name");
  Bytes n = bn_to_be(EC_GROUP_get0_order(group), 48);
  EC_GROUP_free(group);
  return n;
}

Pkey p384_from_private(const Bytes& d_be) {
  EC_GROUP* group = EC_GROUP_new_by_curve_name(NID_secp384r1);
  Bn d(BN_bin2bn(d_be.data(), int(d_be.size()), nullptr));
  EC_POINT* q = group ? EC_POINT_new(group) : nullptr;
  Bytes point(97);
  bool ok = group && d && q && !BN_is_zero(d.get()) && BN_cmp(d.get(), EC_GROUP_get0_order(group)) < 0 &&
            EC_POINT_mul(group, q, d.get(), nullptr, nullptr, nullptr) == 1 &&
            EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, point.data(), point.size(),
                               nullptr) == point.size();
  EC_POINT_free(q);
  EC_GROUP_free(group);
  if (!ok) fail("P-384 private scalar");
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld) fail("OSSL_PARAM_BLD_new");
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-384", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d.get());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  OSSL_PARAM_BLD_free(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  ok = params && ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
       EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) > 0;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  if (!ok) fail("EVP_PKEY_fromdata (P-384 key pair)");
  return Pkey(key);
}

Bytes hmac(const EVP_MD* md, const Bytes& key, const uint8_t* data, size_t len) {
  Bytes out(EVP_MAX_MD_SIZE);
  unsigned out_len = 0;
  if (!HMAC(md, key.data(), int(key.size()), data, len, out.data(), &out_len)) fail("HMAC");
  out.resize(out_len);
  return out;
}

void ecdsa_sign(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len, Bytes& r_be,
                Bytes& s_be) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t siglen = 0;
  Bytes der;
  bool ok = ctx && EVP_DigestSignInit(ctx, nullptr, md, nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &siglen, data, len) == 1;
  if (ok) {
    der.resize(siglen);
    ok = EVP_DigestSign(ctx, der.data(), &siglen, data, len) == 1;
    der.resize(siglen);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) fail("ECDSA sign");
  const uint8_t* p = der.data();
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, long(der.size()));
  if (!sig) fail("d2i_ECDSA_SIG");
  r_be = bn_to_be(ECDSA_SIG_get0_r(sig), 48);
  s_be = bn_to_be(ECDSA_SIG_get0_s(sig), 48);
  ECDSA_SIG_free(sig);
}

bool ecdsa_verify(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len,
                  const Bytes& r_be, const Bytes& s_be) {
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(r_be.data(), int(r_be.size()), nullptr);
  BIGNUM* s = BN_bin2bn(s_be.data(), int(s_be.size()), nullptr);
  if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    fail("ECDSA_SIG_set0");
  }
  uint8_t* der = nullptr;
  int derlen = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (derlen <= 0) fail("i2d_ECDSA_SIG");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, der, size_t(derlen), data, len) == 1;
  EVP_MD_CTX_free(ctx);
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

void rsa_public_ne(EVP_PKEY* key, Bytes& n_be, Bytes& e_be) {
  n_be = get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, 0);
  e_be = get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, 0);
}

Pkey rsa_public_from_ne(const Bytes& n_be, const Bytes& e_be) {
  Bn n(BN_bin2bn(n_be.data(), int(n_be.size()), nullptr));
  Bn e(BN_bin2bn(e_be.data(), int(e_be.size()), nullptr));
  if (!n || !e || BN_is_zero(n.get()) || BN_is_zero(e.get())) return nullptr;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (!bld) fail("OSSL_PARAM_BLD_new");
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n.get());
  OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e.get());
  return from_params("RSA", bld);
}

namespace {
bool pss_init(EVP_MD_CTX* ctx, EVP_PKEY* key, const EVP_MD* md, bool sign) {
  EVP_PKEY_CTX* pctx = nullptr;
  int r = sign ? EVP_DigestSignInit(ctx, &pctx, md, nullptr, key)
               : EVP_DigestVerifyInit(ctx, &pctx, md, nullptr, key);
  return r == 1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, EVP_MD_get_size(md)) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
}
}  // namespace

Bytes rsa_pss_sign(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t siglen = 0;
  Bytes sig;
  bool ok = ctx && pss_init(ctx, key, md, true) &&
            EVP_DigestSign(ctx, nullptr, &siglen, data, len) == 1;
  if (ok) {
    sig.resize(siglen);
    ok = EVP_DigestSign(ctx, sig.data(), &siglen, data, len) == 1;
    sig.resize(siglen);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) fail("RSA-PSS sign");
  return sig;
}

bool rsa_pss_verify(EVP_PKEY* key, const EVP_MD* md, const uint8_t* data, size_t len,
                    const Bytes& sig_be) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && pss_init(ctx, key, md, false) &&
            EVP_DigestVerify(ctx, sig_be.data(), sig_be.size(), data, len) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok;
}

Bytes be_to_le(const Bytes& be, size_t width) {
  Bytes le(width, 0);
  size_t n = std::min(width, be.size());
  for (size_t i = 0; i < n; i++) le[i] = be[be.size() - 1 - i];
  return le;
}

Bytes le_to_be(const uint8_t* le, size_t width) {
  Bytes be(le, le + width);
  std::reverse(be.begin(), be.end());
  return be;
}

}  // namespace sevemu::crypto
