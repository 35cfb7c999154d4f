#include "kds_files.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>

#include "firmware.h"
#include "snp_ca.h"

namespace sevemu {
namespace {

constexpr const char kPrefix[] = "/dev/sev-emu/kds/";

std::string to_hex(const Bytes& b) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t v : b) s += digits[v >> 4], s += digits[v & 15];
  return s;
}

std::string pem(const Bytes& der) {
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, long(der.size()));
  BIO* bio = BIO_new(BIO_s_mem());
  std::string out;
  if (x && bio && PEM_write_bio_X509(bio, x)) {
    char* data;
    long len = BIO_get_mem_data(bio, &data);
    out.assign(data, size_t(len));
  }
  BIO_free(bio);
  X509_free(x);
  if (out.empty()) throw crypto::CryptoError("PEM encoding failed");
  return out;
}

// Splits "a/b/c" into parts.
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    if (slash == std::string::npos) slash = s.size();
    parts.push_back(s.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

int answer(NvSession& nv, const std::vector<std::string>& p, Bytes& out) {
  const Generation& gen = *nv.config().gen;
  const char* product = snp_ca::product(gen);
  auto text = [&](const std::string& s) {
    out.assign(s.begin(), s.end());
    return 0;
  };
  auto bytes = [&](const Bytes& b) {
    out = b;
    return 0;
  };
  if (p.size() == 1 && p[0] == "info") {
    return text(std::string("generation=") + gen.name + "\nproduct=" + (product ? product : "") + "\n");
  }
  if (p.size() == 1 && p[0] == "ask_ark") return bytes(nv.get("ask_ark.cert"));
  if (p.size() == 2 && p[0] == "cek") {  // GET_ID's socket-0 id, as KDS's /cek/id/ path has it
    const Bytes& id = nv.get("chip_id.bin");
    if (strcasecmp(p[1].c_str(), to_hex(Bytes(id.begin(), id.begin() + 64)).c_str()) != 0) return -ENOENT;
    return bytes(nv.get("cek.cert"));
  }
  if (!product || p.size() < 2 || p[1] != product) return -ENOENT;
  if (p.size() == 2 && p[0] == "cert_chain")
    return text(pem(snp_ca::ask_der(nv)) + pem(snp_ca::ark_der(nv)));
  if (p.size() == 2 && p[0] == "crl") return bytes(snp_ca::crl_der(nv));
  if (p.size() == 4 && p[0] == "vcek") {
    if (strcasecmp(p[2].c_str(), to_hex(snp_ca::hwid(nv)).c_str()) != 0) return -ENOENT;
    char* end;
    errno = 0;
    uint64_t tcb = strtoull(p[3].c_str(), &end, 16);
    if (p[3].empty() || p[3].size() > 16 || *end || errno) return -EINVAL;
    return bytes(snp_ca::vcek_der(nv, tcb));
  }
  return -ENOENT;
}

}  // namespace

bool is_kds_path(const char* path) {
  static const bool enabled = [] {
    const char* v = getenv("SEV_EMU_KDS_BACKEND");
    return v && strcmp(v, "1") == 0;
  }();
  return enabled && path && strncmp(path, kPrefix, sizeof kPrefix - 1) == 0;
}

int kds_file(const char* path, Bytes& out) {
  try {
    NvSession nv;
    Firmware fw(nv);
    fw.provision_if_needed();
    int r = answer(nv, split(path + sizeof kPrefix - 1), out);
    nv.commit();
    return r;
  } catch (const std::exception& e) {
    log_line("emulated KDS: %s: %s", path, e.what());
    return -EIO;
  }
}

}  // namespace sevemu
