#include "firmware_state.h"

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_registry.h"
#include "real_libc.h"

namespace sevemu {
namespace {

[[noreturn]] void fail(const std::string& what, int err) {
  throw StateError(what + ": " + strerror(err));
}

void mkdir_p(const std::string& path) {
  std::string cur;
  std::stringstream ss(path);
  std::string part;
  if (!path.empty() && path[0] == '/') cur = "";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += "/" + part;
    if (mkdir(cur.c_str(), 0700) != 0 && errno != EEXIST) fail("mkdir " + cur, errno);
  }
}

// Secrets and runtime state are private; the certificates and config may be read by others
// (the directory itself is 0700 anyway).
mode_t file_mode(const std::string& staged) {
  // A staged "NAME.new" gets NAME's mode, which the rename then keeps.
  bool is_new = staged.size() > 4 && staged.compare(staged.size() - 4, 4, ".new") == 0;
  std::string name = is_new ? staged.substr(0, staged.size() - 4) : staged;
  auto ends = [&](const char* ext) {
    size_t n = strlen(ext);
    return name.size() > n && name.compare(name.size() - n, n, ext) == 0;
  };
  bool pub = ends(".cert") || ends(".der");
  return pub || name == "config" ? 0644 : 0600;
}

std::map<std::string, std::string> parse_kv(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

// A file that only a session in the middle of a write has: "NAME.tmp.PID.TID" (write_atomic)
// or a staged "NAME.new" (commit). Sessions hold the state's exclusive lock, so the holder of
// the lock finds such files only where a process died (kill -9, power loss) mid-write.
bool is_orphan_name(const char* name) {
  size_t n = strlen(name);
  if (n > 4 && strcmp(name + n - 4, ".new") == 0) return true;
  const char* tmp = strstr(name, ".tmp.");
  if (!tmp || tmp == name) return false;
  const char* p = tmp + 5;
  int dots = 0;
  for (; *p; ++p) {
    if (*p == '.') {
      if (p[-1] == '.') return false;
      ++dots;
    } else if (*p < '0' || *p > '9') {
      return false;
    }
  }
  return dots == 1 && p[-1] != '.';
}

uint64_t to_u64(const std::map<std::string, std::string>& kv, const char* key) {
  auto it = kv.find(key);
  return it == kv.end() ? 0 : strtoull(it->second.c_str(), nullptr, 0);
}

}  // namespace

std::string state_dir() {
  const char* env = getenv("SEV_EMU_STATE");
  if (env && *env) return env;
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.local/state/node-sev/emu";
}

NvSession::NvSession() : dir_(state_dir()) {
  mkdir_p(dir_);
  std::string lock = dir_ + "/lock";
  // A fresh open file description per session: flock excludes other threads of this
  // process as well as other processes.
  lock_fd_ = real::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) fail("open " + lock, errno);
  while (flock(lock_fd_, LOCK_EX) != 0) {
    if (errno != EINTR) {
      int e = errno;
      real::close(lock_fd_);
      fail("flock " + lock, e);
    }
  }
  recover();
}

namespace {
constexpr const char* kJournal = "commit.journal";
}  // namespace

// A command changes several files (PEK_GEN: PEK, OCA, PDH and their certificates). commit()
// stages each as NAME.new, then writes a journal naming them (one atomic rename), then moves
// them into place and deletes the journal. A process killed after the journal exists leaves a
// commit that the next session completes here; killed before, it leaves only unused .new files,
// which are removed here with any other orphaned temporary file.
void NvSession::recover() {
  std::string journal = dir_ + "/" + kJournal;
  if (load(kJournal)) replay_journal(journal);
  if (DIR* d = opendir(dir_.c_str())) {
    while (struct dirent* e = readdir(d))
      if (is_orphan_name(e->d_name)) unlink((dir_ + "/" + e->d_name).c_str());
    closedir(d);
  }
}

void NvSession::replay_journal(const std::string& journal) {
  std::string text(files_[kJournal].begin(), files_[kJournal].end());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() < 5) continue;
    std::string path = dir_ + "/" + line.substr(4);
    if (line.compare(0, 4, "put ") == 0) rename((path + ".new").c_str(), path.c_str());  // ENOENT: done
    if (line.compare(0, 4, "del ") == 0) unlink(path.c_str());
  }
  unlink(journal.c_str());
  files_.clear();
  absent_.clear();
}

NvSession::~NvSession() {
  if (lock_fd_ >= 0) real::close(lock_fd_);  // closing releases the flock
}

bool NvSession::load(const std::string& name) {
  if (files_.count(name)) return true;
  if (absent_.count(name)) return false;
  std::string path = dir_ + "/" + name;
  int fd = real::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      absent_.insert(name);
      return false;
    }
    fail("open " + path, errno);
  }
  Bytes data;
  uint8_t buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      real::close(fd);
      fail("read " + path, e);
    }
    if (n == 0) break;
    data.insert(data.end(), buf, buf + n);
  }
  real::close(fd);
  files_[name] = std::move(data);
  return true;
}

bool NvSession::has(const std::string& name) { return load(name); }

const Bytes& NvSession::get(const std::string& name) {
  if (!load(name)) throw StateError("state file missing: " + dir_ + "/" + name);
  return files_[name];
}

std::string NvSession::get_text(const std::string& name) {
  const Bytes& b = get(name);
  return std::string(b.begin(), b.end());
}

void NvSession::put(const std::string& name, Bytes data) {
  files_[name] = std::move(data);
  absent_.erase(name);
  erased_.erase(name);
  dirty_.insert(name);
}

void NvSession::put_text(const std::string& name, const std::string& text) {
  put(name, Bytes(text.begin(), text.end()));
}

void NvSession::erase(const std::string& name) {
  files_.erase(name);
  dirty_.erase(name);
  absent_.insert(name);
  erased_.insert(name);
}

bool NvSession::provisioned() { return has("config"); }

const PlatformConfig& NvSession::config() {
  if (config_loaded_) return config_;
  auto kv = parse_kv(get_text("config"));
  config_.gen = find_generation(kv["generation"]);
  if (!config_.gen) throw StateError("bad generation in " + dir_ + "/config");
  config_.api_major = uint8_t(to_u64(kv, "api_major"));
  config_.api_minor = uint8_t(to_u64(kv, "api_minor"));
  config_.build = uint8_t(to_u64(kv, "build"));
  config_.sockets = int(to_u64(kv, "sockets")) == 2 ? 2 : 1;
  config_.host_snp = kv.count("host_snp") && to_u64(kv, "host_snp") == 1 && config_.gen->snp;
  config_loaded_ = true;
  return config_;
}

void NvSession::set_config(const PlatformConfig& c) {
  config_ = c;
  config_loaded_ = true;
  std::ostringstream o;
  o << "generation=" << c.gen->name << "\napi_major=" << int(c.api_major)
    << "\napi_minor=" << int(c.api_minor) << "\nbuild=" << int(c.build)
    << "\nsockets=" << c.sockets << "\nhost_snp=" << int(c.host_snp) << "\n";
  put_text("config", o.str());
}

PlatformState& NvSession::state() {
  if (state_loaded_) return state_;
  if (has("state")) {
    auto kv = parse_kv(get_text("state"));
    state_.sev_init = to_u64(kv, "sev_init") != 0;
    state_.snp_init = to_u64(kv, "snp_init") != 0;
    state_.owner_external = to_u64(kv, "owner") != 0;
    state_.guest_count = uint32_t(to_u64(kv, "guest_count"));
    state_.snp_config_flags = uint32_t(to_u64(kv, "snp_config_flags"));
    state_.snp_reported_tcb = to_u64(kv, "snp_reported_tcb");
    state_.snp_committed_tcb = to_u64(kv, "snp_committed_tcb");
  }
  // Live guests are counted from the guest table (guest_registry.h), which drops those
  // of processes that have exited.
  state_.guest_count = registry::live_guests(*this);
  state_loaded_ = true;
  return state_;
}

void NvSession::write_atomic(const std::string& name, const Bytes& data) {
  char suffix[64];
  snprintf(suffix, sizeof suffix, ".tmp.%d.%ld", int(getpid()), long(gettid()));
  std::string path = dir_ + "/" + name, tmp = path + suffix;
  int fd = real::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, file_mode(name));
  if (fd < 0) fail("open " + tmp, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      real::close(fd);
      unlink(tmp.c_str());
      fail("write " + tmp, e);
    }
    off += size_t(n);
  }
  fchmod(fd, file_mode(name));  // O_CREAT's mode is filtered by the umask
  // The data reaches the disk before the name does: a crash leaves the old file or the new one.
  if (fsync(fd) != 0 && errno != EINVAL) {
    int e = errno;
    real::close(fd);
    unlink(tmp.c_str());
    fail("fsync " + tmp, e);
  }
  real::close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    fail("rename " + path, e);
  }
}

void NvSession::commit() {
  if (state_dirty_) {
    char text[512];
    snprintf(text, sizeof text,
             "sev_init=%d\nsnp_init=%d\nowner=%d\nguest_count=%u\nsnp_config_flags=%u\n"
             "snp_reported_tcb=0x%016" PRIx64 "\nsnp_committed_tcb=0x%016" PRIx64 "\n",
             int(state_.sev_init), int(state_.snp_init), int(state_.owner_external),
             state_.guest_count, state_.snp_config_flags, state_.snp_reported_tcb,
             state_.snp_committed_tcb);
    put_text("state", text);
    state_dirty_ = false;
  }
  // "config" goes last: a directory with a config is a provisioned one.
  std::vector<std::string> puts;
  for (const auto& name : dirty_)
    if (name != "config") puts.push_back(name);
  if (dirty_.count("config")) puts.push_back("config");
  if (puts.size() + erased_.size() <= 1) {  // one file: a plain atomic rename suffices
    for (const auto& name : puts) write_atomic(name, files_[name]);
    for (const auto& name : erased_) unlink((dir_ + "/" + name).c_str());
  } else {
    std::string journal;
    for (const auto& name : puts) {
      write_atomic(name + ".new", files_[name]);
      journal += "put " + name + "\n";
    }
    for (const auto& name : erased_) journal += "del " + name + "\n";
    write_atomic(kJournal, Bytes(journal.begin(), journal.end()));  // the commit point
    sync_dir();  // the journal's name is on disk before any staged file replaces its target
    files_.erase(kJournal);
    absent_.erase(kJournal);
    for (const auto& name : puts) {
      std::string path = dir_ + "/" + name;
      if (rename((path + ".new").c_str(), path.c_str()) != 0) fail("rename " + path, errno);
    }
    for (const auto& name : erased_) unlink((dir_ + "/" + name).c_str());
    unlink((dir_ + "/" + kJournal).c_str());
  }
  if (!puts.empty() || !erased_.empty()) sync_dir();  // the renames survive a crash
  dirty_.clear();
  erased_.clear();
}

void NvSession::sync_dir() {
  int fd = real::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);  // some file systems refuse fsync on a directory; the renames have happened anyway
  real::close(fd);
}

}  // namespace sevemu
