#include "guest_registry.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <unistd.h>
#include <vector>

#include "real_libc.h"

namespace sevemu::registry {
namespace {

constexpr const char* kFile = "guests";

struct Entry {
  bool guest;  // false: an ASID entry
  uint32_t id;  // handle, SNP guest context or ASID
  long pid;
  uint64_t start;
  uint32_t policy = 0, asid = 0;
  bool snp = false;  // an SNP guest context ("snp" line): not counted by PLATFORM_STATUS
};

// Field 22 of /proc/<pid>/stat (start time in clock ticks); 0 when the process is gone.
uint64_t start_time(long pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  int fd = real::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  real::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char* p = strrchr(buf, ')');  // the command name may contain spaces
  if (!p) return 0;
  // After ") " come fields 3.. ; the start time is field 22.
  int field = 2;
  for (; *p && field < 22; p++)
    if (*p == ' ') field++;
  return strtoull(p, nullptr, 10);
}

long self_pid() { return long(getpid()); }  // not cached: fork gives a new pid

uint64_t self_start() {
  static long pid = 0;
  static uint64_t start = 0;
  if (pid != self_pid()) {
    start = start_time(self_pid());
    pid = self_pid();
  }
  return start;
}

std::vector<Entry> parse(const std::string& text) {
  std::vector<Entry> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    Entry e{};
    char kind[8] = "";
    unsigned long long start = 0;
    unsigned id = 0, policy = 0, asid = 0;
    int n = sscanf(line.c_str(), "%7s %u %ld %llu %u %u", kind, &id, &e.pid, &start, &policy, &asid);
    if (n < 4) continue;
    e.snp = strcmp(kind, "snp") == 0;
    e.guest = e.snp || strcmp(kind, "guest") == 0;
    if (!e.guest && strcmp(kind, "asid") != 0) continue;
    e.id = id;
    e.start = start;
    e.policy = policy;
    e.asid = asid;
    out.push_back(e);
  }
  return out;
}

std::string format(const std::vector<Entry>& v) {
  std::string s;
  char line[128];
  for (const Entry& e : v) {
    if (e.guest)
      snprintf(line, sizeof line, "%s %u %ld %" PRIu64 " %u %u\n", e.snp ? "snp" : "guest", e.id, e.pid,
               e.start, e.policy, e.asid);
    else
      snprintf(line, sizeof line, "asid %u %ld %" PRIu64 "\n", e.id, e.pid, e.start);
    s += line;
  }
  return s;
}

// Reads the table, dropping entries of processes that no longer exist (written back
// when something was dropped).
std::vector<Entry> load(NvSession& nv) {
  if (!nv.has(kFile)) return {};
  std::vector<Entry> all = parse(nv.get_text(kFile)), live;
  for (const Entry& e : all) {
    bool alive = e.pid == self_pid() ? e.start == self_start() : start_time(e.pid) == e.start;
    if (alive && e.start != 0) live.push_back(e);
  }
  if (live.size() != all.size()) nv.put_text(kFile, format(live));
  return live;
}

uint32_t count_guests(const std::vector<Entry>& v, bool snp = false) {
  uint32_t n = 0;
  for (const Entry& e : v) n += e.guest && e.snp == snp;
  return n;
}

// Writes the table and the platform's guest count (PLATFORM_STATUS, WORKING state).
void store(NvSession& nv, const std::vector<Entry>& v) {
  nv.put_text(kFile, format(v));
  nv.state().guest_count = count_guests(v);
  nv.state_changed();
}

}  // namespace

uint32_t live_guests(NvSession& nv) { return count_guests(load(nv)); }
uint32_t live_snp_guests(NvSession& nv) { return count_guests(load(nv), true); }

uint32_t alloc_asid(NvSession& nv, uint32_t min, uint32_t max) {
  std::vector<Entry> v = load(nv);
  for (uint32_t a = min; a <= max && a != 0; a++) {
    bool used = false;
    for (const Entry& e : v) used |= !e.guest && e.id == a;
    if (used) continue;
    v.push_back(Entry{false, a, self_pid(), self_start()});
    store(nv, v);
    return a;
  }
  return 0;
}

void free_asid(NvSession& nv, uint32_t asid) {
  std::vector<Entry> v = load(nv), keep;
  for (const Entry& e : v)
    if (e.guest || e.id != asid || e.pid != self_pid()) keep.push_back(e);
  store(nv, keep);
}

uint32_t add_guest(NvSession& nv, uint32_t policy, bool snp) {
  std::vector<Entry> v = load(nv);
  uint32_t h = 1;
  for (bool taken = true; taken; h++) {
    taken = false;
    for (const Entry& e : v) taken |= e.guest && e.snp == snp && e.id == h;
    if (!taken) break;
  }
  Entry e{true, h, self_pid(), self_start()};
  e.policy = policy;
  e.snp = snp;
  v.push_back(e);
  store(nv, v);
  return h;
}

bool find_guest(NvSession& nv, uint32_t handle, uint32_t* policy, uint32_t* asid) {
  for (const Entry& e : load(nv))
    if (e.guest && !e.snp && e.id == handle) {
      if (policy) *policy = e.policy;
      if (asid) *asid = e.asid;
      return true;
    }
  return false;
}

bool asid_in_use(NvSession& nv, uint32_t asid, uint32_t handle, bool snp) {
  for (const Entry& e : load(nv))
    if (e.guest && e.asid == asid && (e.snp != snp || e.id != handle)) return true;
  return false;
}

void bind_asid(NvSession& nv, uint32_t handle, uint32_t asid, bool snp) {
  std::vector<Entry> v = load(nv);
  for (Entry& e : v)
    if (e.guest && e.snp == snp && e.id == handle) e.asid = asid;
  store(nv, v);
}

void remove_guest(NvSession& nv, uint32_t handle, bool snp) {
  std::vector<Entry> v = load(nv), keep;
  for (const Entry& e : v)
    if (!e.guest || e.snp != snp || e.id != handle) keep.push_back(e);
  store(nv, keep);
}

}  // namespace sevemu::registry
