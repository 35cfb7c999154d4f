#include "snp_ca.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace sevemu::snp_ca {
namespace {

[[noreturn]] void fail(const char* what) { crypto::fail(std::string("SNP CA: ") + what); }

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

bool is_turin(const Generation& gen) { return strcmp(gen.name, "turin") == 0; }

const Generation& generation(NvSession& nv) {
  const Generation& gen = *nv.config().gen;
  if (!gen.snp) throw StateError(std::string("the emulated ") + gen.name + " has no SEV-SNP");
  return gen;
}

// Distinguished names as AMD writes them, with an organisation nobody mistakes for AMD's.
void set_name(X509_NAME* name, const std::string& cn) {
  const char* fields[][2] = {{"OU", "Engineering"}, {"C", "US"}, {"L", "Santa Clara"}, {"ST", "CA"},
                             {"O", "node-sev emulator (not AMD)"}, {"CN", cn.c_str()}};
  for (auto& f : fields)
    if (!X509_NAME_add_entry_by_txt(name, f[0], MBSTRING_ASC,
                                    reinterpret_cast<const unsigned char*>(f[1]), -1, -1, 0))
      fail("X509_NAME_add_entry_by_txt");
}

// An extension whose extnValue holds `der` (AMD's VCEK extensions are non-critical).
void add_raw_extension(X509* x, const char* oid, const Bytes& der) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
  X509_EXTENSION* ext = nullptr;
  bool ok = obj && value && ASN1_OCTET_STRING_set(value, der.data(), int(der.size())) &&
            (ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, value)) && X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  ASN1_OCTET_STRING_free(value);
  ASN1_OBJECT_free(obj);
  if (!ok) fail("VCEK extension");
}

Bytes der_integer(uint32_t v) {
  Bytes out{0x02};
  Bytes body;
  for (int shift = 24; shift >= 0; shift -= 8)
    if (!body.empty() || (v >> shift) & 0xff || shift == 0) body.push_back(uint8_t(v >> shift));
  if (body[0] & 0x80) body.insert(body.begin(), 0);
  out.push_back(uint8_t(body.size()));
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

Bytes der_ia5(const std::string& s) {
  Bytes out{0x16, uint8_t(s.size())};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

void add_v3(X509* x, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext || !X509_add_ext(x, ext, -1)) fail("X509v3 extension");
  X509_EXTENSION_free(ext);
}

// RSASSA-PSS, SHA-384, MGF1-SHA-384, 48-byte salt: how AMD signs every chain certificate and CRL.
template <typename Sign>
void pss_sign(EVP_PKEY* key, Sign sign) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = ctx && EVP_DigestSignInit(ctx, &pctx, EVP_sha384(), nullptr, key) == 1 &&
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) > 0 &&
            EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) > 0 && sign(ctx) > 0;
  EVP_MD_CTX_free(ctx);
  if (!ok) fail("RSASSA-PSS signature");
}

Bytes to_der(X509* x) {
  int len = i2d_X509(x, nullptr);
  if (len <= 0) fail("i2d_X509");
  Bytes out(size_t(len), 0);
  unsigned char* p = out.data();
  i2d_X509(x, &p);
  return out;
}

X509Ptr from_der(const Bytes& der) {
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, long(der.size())));
  if (!x) fail("stored certificate does not parse");
  return x;
}

// A certificate for `subject_key`, signed by `signer` (itself when `issuer` is null).
X509Ptr make_cert(const std::string& cn, long serial, long days, EVP_PKEY* subject_key, X509* issuer,
                  EVP_PKEY* signer) {
  X509Ptr x(X509_new());
  if (!x || !X509_set_version(x.get(), 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial))
    fail("X509_new");
  set_name(X509_get_subject_name(x.get()), cn);
  if (!X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x.get())) ||
      !X509_gmtime_adj(X509_getm_notBefore(x.get()), -86400) ||
      !X509_gmtime_adj(X509_getm_notAfter(x.get()), days * 86400) || !X509_set_pubkey(x.get(), subject_key))
    fail("certificate fields");
  return x;
}

const Bytes& ensure_file(NvSession& nv, const char* name, Bytes (*make)(NvSession&)) {
  if (!nv.has(name)) nv.put(name, make(nv));
  return nv.get(name);
}

Bytes make_ark(NvSession& nv) {
  const Generation& gen = generation(nv);
  crypto::Pkey ark = crypto::private_from_pem(nv.get_text("ark.pem"));
  X509Ptr x = make_cert(std::string("ARK-") + product(gen), 0, 25 * 365, ark.get(), nullptr, ark.get());
  add_v3(x.get(), x.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_v3(x.get(), x.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  pss_sign(ark.get(), [&](EVP_MD_CTX* ctx) { return X509_sign_ctx(x.get(), ctx); });
  return to_der(x.get());
}

Bytes make_ask(NvSession& nv) {
  const Generation& gen = generation(nv);
  crypto::Pkey ark = crypto::private_from_pem(nv.get_text("ark.pem"));
  crypto::Pkey ask = crypto::private_from_pem(nv.get_text("ask.pem"));
  X509Ptr issuer = from_der(ark_der(nv));
  X509Ptr x = make_cert(std::string("SEV-") + product(gen), 0, 25 * 365, ask.get(), issuer.get(), ark.get());
  add_v3(x.get(), issuer.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_v3(x.get(), issuer.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  pss_sign(ark.get(), [&](EVP_MD_CTX* ctx) { return X509_sign_ctx(x.get(), ctx); });
  return to_der(x.get());
}

// The ARK's CRL, as KDS serves it per product: nothing revoked.
Bytes make_crl(NvSession& nv) {
  crypto::Pkey ark = crypto::private_from_pem(nv.get_text("ark.pem"));
  X509Ptr issuer = from_der(ark_der(nv));
  X509_CRL* crl = X509_CRL_new();
  ASN1_TIME* now = X509_gmtime_adj(nullptr, -86400);
  ASN1_TIME* next = X509_gmtime_adj(nullptr, 365L * 86400);
  bool ok = crl && now && next && X509_CRL_set_version(crl, 1) &&
            X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer.get())) &&
            X509_CRL_set1_lastUpdate(crl, now) && X509_CRL_set1_nextUpdate(crl, next);
  ASN1_TIME_free(now);
  ASN1_TIME_free(next);
  if (!ok) {
    X509_CRL_free(crl);
    fail("X509_CRL");
  }
  pss_sign(ark.get(), [&](EVP_MD_CTX* ctx) { return X509_CRL_sign_ctx(crl, ctx); });
  int len = i2d_X509_CRL(crl, nullptr);
  Bytes out(size_t(len > 0 ? len : 0), 0);
  unsigned char* p = out.data();
  if (len <= 0 || i2d_X509_CRL(crl, &p) != len) {
    X509_CRL_free(crl);
    fail("i2d_X509_CRL");
  }
  X509_CRL_free(crl);
  return out;
}

const Bytes& chip_secret(NvSession& nv) {
  if (!nv.has("chip_secret.bin")) nv.put("chip_secret.bin", crypto::random_bytes(48));
  return nv.get("chip_secret.bin");
}

Bytes tcb_le(uint64_t tcb) {
  Bytes b(8);
  for (int i = 0; i < 8; i++) b[i] = uint8_t(tcb >> (8 * i));
  return b;
}

}  // namespace

const char* product(const Generation& gen) {
  if (strcmp(gen.name, "milan") == 0) return "Milan";
  if (strcmp(gen.name, "genoa") == 0) return "Genoa";
  if (strcmp(gen.name, "turin") == 0) return "Turin";
  return nullptr;
}

const char* product_with_stepping(const Generation& gen) {
  return strcmp(gen.name, "milan") == 0 ? "Milan-B0" : product(gen);
}

Bytes hwid(NvSession& nv) {
  const Bytes& id = nv.get("chip_id.bin");
  return Bytes(id.begin(), id.begin() + (is_turin(generation(nv)) ? 8 : 64));
}

const Bytes& ark_der(NvSession& nv) { return ensure_file(nv, "snp_ark.der", make_ark); }
const Bytes& ask_der(NvSession& nv) { return ensure_file(nv, "snp_ask.der", make_ask); }
const Bytes& crl_der(NvSession& nv) { return ensure_file(nv, "snp_crl.der", make_crl); }

Bytes chip_derive(NvSession& nv, const char* label, const Bytes& data) {
  Bytes msg(label, label + strlen(label) + 1);
  msg.insert(msg.end(), data.begin(), data.end());
  return crypto::hmac(EVP_sha384(), chip_secret(nv), msg.data(), msg.size());
}

// d = 1 + (HMAC-SHA-384(chip secret, "VCEK" ‖ TCB) mod (n - 1)): a valid scalar, one per TCB.
crypto::Pkey vcek_key(NvSession& nv, uint64_t tcb) {
  Bytes h = chip_derive(nv, "VCEK", tcb_le(tcb));
  Bytes n_be = crypto::p384_order();
  BIGNUM* d = BN_bin2bn(h.data(), int(h.size()), nullptr);
  BIGNUM* n = BN_bin2bn(n_be.data(), int(n_be.size()), nullptr);
  BN_CTX* ctx = BN_CTX_new();
  Bytes d_be(48);
  bool ok = d && n && ctx && BN_sub_word(n, 1) && BN_mod(d, d, n, ctx) && BN_add_word(d, 1) &&
            BN_bn2binpad(d, d_be.data(), 48) == 48;
  BN_free(d);
  BN_free(n);
  BN_CTX_free(ctx);
  if (!ok) fail("VCEK scalar");
  return crypto::p384_from_private(d_be);
}

Bytes vcek_der(NvSession& nv, uint64_t tcb) {
  char name[40];
  snprintf(name, sizeof name, "vcek_%016" PRIx64 ".der", tcb);
  if (nv.has(name)) return nv.get(name);
  const Generation& gen = generation(nv);
  crypto::Pkey key = vcek_key(nv, tcb);
  crypto::Pkey ask = crypto::private_from_pem(nv.get_text("ask.pem"));
  X509Ptr issuer = from_der(ask_der(nv));
  X509Ptr x = make_cert("SEV-VCEK", 0, 7 * 365, key.get(), issuer.get(), ask.get());
  auto spl = [&](int byte) { return uint32_t(tcb >> (8 * byte) & 0xff); };
  std::string base = "1.3.6.1.4.1.3704.1.";
  add_raw_extension(x.get(), (base + "1").c_str(), der_integer(1));
  add_raw_extension(x.get(), (base + "2").c_str(), der_ia5(product_with_stepping(gen)));
  // TCB_VERSION bytes: Milan/Genoa 0 boot loader, 1 TEE, 6 SNP, 7 microcode; Turin 0 FMC,
  // 1 boot loader, 2 TEE, 3 SNP, 7 microcode. Unused SPLs are present as 0, as AMD writes them.
  bool turin = is_turin(gen);
  if (turin) add_raw_extension(x.get(), (base + "3.9").c_str(), der_integer(spl(0)));
  add_raw_extension(x.get(), (base + "3.1").c_str(), der_integer(spl(turin ? 1 : 0)));
  add_raw_extension(x.get(), (base + "3.2").c_str(), der_integer(spl(turin ? 2 : 1)));
  add_raw_extension(x.get(), (base + "3.3").c_str(), der_integer(spl(turin ? 3 : 6)));
  for (int i = turin ? 5 : 4; i <= 7; i++)
    add_raw_extension(x.get(), (base + "3." + std::to_string(i)).c_str(), der_integer(0));
  add_raw_extension(x.get(), (base + "3.8").c_str(), der_integer(spl(7)));
  add_raw_extension(x.get(), (base + "4").c_str(), hwid(nv));
  pss_sign(ask.get(), [&](EVP_MD_CTX* ctx) { return X509_sign_ctx(x.get(), ctx); });
  Bytes der = to_der(x.get());
  nv.put(name, der);
  return der;
}

}  // namespace sevemu::snp_ca
