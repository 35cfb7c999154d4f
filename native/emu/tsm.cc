#include "tsm.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "devices.h"
#include "firmware_state.h"
#include "real_libc.h"
#include "snp_guest.h"

namespace sevemu::tsm {
namespace {

constexpr const char kBase[] = "/sys/kernel/config/tsm/report";

// Attributes of a report item the sev-guest provider shows (no SVSM: no service_* and no
// manifestblob), and whether they are written (0200) or read (0444).
struct Attribute {
  const char* name;
  bool writable;
};
constexpr Attribute kAttributes[] = {{"inblob", true},        {"privlevel", true},
                                     {"generation", false},   {"provider", false},
                                     {"privlevel_floor", false}, {"outblob", false},
                                     {"auxblob", false}};

const Attribute* find_attribute(const std::string& name) {
  for (const auto& a : kAttributes)
    if (name == a.name) return &a;
  return nullptr;
}

// A configfs-tsm path, split: the item name ("" for the report directory) and attribute.
struct TsmPath {
  std::string item, attribute;
};

bool parse(const char* path, TsmPath& out) {
  if (!snp_guest_enabled() || !path) return false;
  size_t n = sizeof kBase - 1;
  if (strncmp(path, kBase, n) != 0 || (path[n] && path[n] != '/')) return false;
  std::string rest = path + n;
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (!rest.empty()) rest.erase(0, 1);
  size_t slash = rest.find('/');
  out.item = rest.substr(0, slash);
  out.attribute = slash == std::string::npos ? "" : rest.substr(slash + 1);
  return true;
}

std::string root_dir() { return state_dir() + "/guest/tsm/report"; }
std::string item_dir(const std::string& item) { return root_dir() + "/" + item; }
std::string cache_dir(const std::string& item) { return state_dir() + "/guest/tsm/cache/" + item; }

void mkdir_p(const std::string& path) {
  for (size_t i = 1; i <= path.size(); i++)
    if (i == path.size() || path[i] == '/') real::mkdirat(AT_FDCWD, path.substr(0, i).c_str(), 0700);
}

bool read_file(const std::string& path, std::string& out) {
  int fd = real::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out.clear();
  char buf[4096];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(r));
  real::close(fd);
  return r == 0;
}

bool write_file(const std::string& path, const std::string& data) {
  int fd = real::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == ssize_t(data.size());
  real::close(fd);
  return ok;
}


// The item's lock: generation updates and report generation are one at a time per item,
// like the kernel's tsm_rwsem.
struct ItemLock {
  int fd;
  explicit ItemLock(const std::string& item) {
    fd = real::open((cache_dir(item) + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) flock(fd, LOCK_EX);
  }
  ~ItemLock() {
    if (fd >= 0) real::close(fd);
  }
};

unsigned long generation(const std::string& item) {
  std::string text;
  return read_file(cache_dir(item) + "/write_generation", text) ? strtoul(text.c_str(), nullptr, 10) : 0;
}

// The report for the item's current inblob and privlevel, generated once per generation
// (read_cached_report), so outblob and auxblob read at one generation belong together.
int report_for(const std::string& item, bool aux, std::string& out) {
  ItemLock lock(item);
  unsigned long gen = generation(item);
  std::string cache = cache_dir(item), cached_gen;
  if (read_file(cache + "/report_generation", cached_gen) && strtoul(cached_gen.c_str(), nullptr, 10) == gen &&
      read_file(cache + (aux ? "/auxblob" : "/outblob"), out))
    return 0;
  std::string inblob, privlevel;
  read_file(item_dir(item) + "/inblob", inblob);
  read_file(item_dir(item) + "/privlevel", privlevel);
  if (inblob.size() != 64) return -EINVAL;  // sev_report_new wants exactly 64 bytes
  char* end;
  unsigned long vmpl = privlevel.empty() ? 0 : strtoul(privlevel.c_str(), &end, 10);
  if (!privlevel.empty() && (*end && strcmp(end, "\n") != 0)) return -EINVAL;
  const char* floor = getenv("SEV_EMU_GUEST_VMPL");
  if (vmpl > 3 || vmpl < (floor ? strtoul(floor, nullptr, 10) : 0)) return -EINVAL;
  Bytes report, certs;
  int r = snp_guest_tsm_report(reinterpret_cast<const uint8_t*>(inblob.data()), uint32_t(vmpl), report, certs);
  if (r) return r;
  std::string out_blob(report.begin(), report.end()), aux_blob(certs.begin(), certs.end());
  write_file(cache + "/outblob", out_blob);
  write_file(cache + "/auxblob", aux_blob);
  write_file(cache + "/report_generation", std::to_string(gen));
  out = aux ? aux_blob : out_blob;
  return 0;
}

bool item_exists(const std::string& item) {
  int fd = real::open(item_dir(item).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  real::close(fd);
  return true;
}

bool valid_item_name(const std::string& item) {
  return !item.empty() && item != "." && item != ".." && item.find('/') == std::string::npos;
}

int fail(int err) {
  errno = err;
  return -1;
}

int open_attribute(const TsmPath& p, int flags, mode_t mode) {
  const Attribute* attr = find_attribute(p.attribute);
  if (!valid_item_name(p.item) || !item_exists(p.item) || !attr)
    return fail((flags & O_CREAT) && item_exists(p.item) ? EACCES : ENOENT);
  int acc = flags & O_ACCMODE;
  if ((acc != O_RDONLY) != attr->writable) return fail(EACCES);
  if (attr->writable) {
    ItemLock lock(p.item);  // try_advance_write_generation
    write_file(cache_dir(p.item) + "/write_generation", std::to_string(generation(p.item) + 1));
    return real::open((item_dir(p.item) + "/" + p.attribute).c_str(),
                      (flags & ~(O_CREAT | O_EXCL)) | O_CREAT, 0600);
  }
  std::string text;
  if (p.attribute == "generation") {
    text = std::to_string(generation(p.item)) + "\n";
  } else if (p.attribute == "provider") {
    text = "sev_guest\n";
  } else if (p.attribute == "privlevel_floor") {
    const char* floor = getenv("SEV_EMU_GUEST_VMPL");
    text = std::string(floor && *floor ? floor : "0") + "\n";
  } else {
    int r = report_for(p.item, p.attribute == "auxblob", text);
    if (r) return fail(-r);
  }
  return open_contents(text.data(), text.size(), flags);
}

}  // namespace

bool open_path(const char* path, int flags, mode_t mode, int* result) {
  TsmPath p;
  if (!parse(path, p)) return false;
  if (p.attribute.empty()) {  // the report directory or an item: its backing directory
    mkdir_p(root_dir());
    if (!p.item.empty() && !item_exists(p.item)) {
      *result = fail(ENOENT);
      return true;
    }
    *result = (flags & O_ACCMODE) != O_RDONLY ? fail(EISDIR)
                                              : real::open((p.item.empty() ? root_dir() : item_dir(p.item)).c_str(), flags, mode);
    return true;
  }
  *result = open_attribute(p, flags, mode);
  return true;
}

bool mkdir_path(const char* path, mode_t, int* result) {
  TsmPath p;
  if (!parse(path, p)) return false;
  if (p.item.empty()) {
    *result = fail(EEXIST);
  } else if (!p.attribute.empty() || !valid_item_name(p.item)) {
    *result = fail(p.attribute.empty() ? EINVAL : EPERM);  // items hold attributes, not items
  } else {
    mkdir_p(root_dir());
    if (real::mkdirat(AT_FDCWD, item_dir(p.item).c_str(), 0700) != 0) {
      *result = -1;  // errno from mkdir: EEXIST when the item exists
      return true;
    }
    mkdir_p(cache_dir(p.item));  // the item's lock, generation and cached report
    for (const auto& a : kAttributes)
      if (a.writable) write_file(item_dir(p.item) + "/" + a.name, "");
    *result = 0;
  }
  return true;
}

bool rmdir_path(const char* path, int* result) {
  TsmPath p;
  if (!parse(path, p)) return false;
  if (p.item.empty() || !p.attribute.empty()) {
    *result = fail(p.item.empty() ? EBUSY : ENOTDIR);
    return true;
  }
  if (!valid_item_name(p.item) || !item_exists(p.item)) {
    *result = fail(ENOENT);
    return true;
  }
  for (const std::string& dir : {item_dir(p.item), cache_dir(p.item)}) {
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(dirfd(d), e->d_name, 0);
      closedir(d);
    }
    real::rmdir(dir.c_str());
  }
  *result = 0;
  return true;
}

bool access_path(const char* path, int mode, int* result) {
  TsmPath p;
  if (!parse(path, p)) return false;
  if (p.attribute.empty()) {
    *result = p.item.empty() || item_exists(p.item) ? 0 : fail(ENOENT);
    return true;
  }
  const Attribute* attr = find_attribute(p.attribute);
  if (!attr || !item_exists(p.item)) {
    *result = fail(ENOENT);
  } else {
    *result = ((mode & W_OK) && !attr->writable) || ((mode & R_OK) && attr->writable) ? fail(EACCES) : 0;
  }
  return true;
}

}  // namespace sevemu::tsm
