// A mutex-protected map plus an atomic count for the "nothing registered" fast path:
// libuv and QEMU call ioctl/close on their own fds constantly, and those calls should
// cost one atomic load when the emulator has nothing open.
#include "fd_table.h"

#include <pthread.h>
#include <sys/stat.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace sevemu::fd_table {
namespace {

std::mutex& mu() {
  static std::mutex* m = new std::mutex;  // never destroyed: fds may close during exit
  return *m;
}
// An emulated object and the identity (device, inode) of the open file it was registered on.
// Callers may close fds behind the emulator's back (libuv uses syscall(SYS_close)); a number
// whose file has changed is then recognised as reused, and its stale entry dropped.
struct Entry {
  std::shared_ptr<FdObject> obj;
  dev_t dev = 0;
  ino_t ino = 0;
};
std::unordered_map<int, Entry>& map() {
  static auto* m = new std::unordered_map<int, Entry>;
  return *m;
}

bool identity(int fd, dev_t& dev, ino_t& ino) {
  struct stat st;
  if (fstat(fd, &st) != 0) return false;
  dev = st.st_dev;
  ino = st.st_ino;
  return true;
}
std::atomic<size_t> g_count{0};

// A fork() while another thread holds the table lock would leave the child's copy locked
// forever (libuv's child setup calls dup2/close, which consult the table), so fork waits
// for the lock and both sides release it.
void lock_for_fork() { mu().lock(); }
void unlock_after_fork() { mu().unlock(); }
__attribute__((constructor)) void install_fork_handlers() {
  pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

}  // namespace

void insert(int fd, std::shared_ptr<FdObject> obj) {
  Entry e{std::move(obj)};
  identity(fd, e.dev, e.ino);
  std::lock_guard<std::mutex> lock(mu());
  map()[fd] = std::move(e);
  g_count.store(map().size(), std::memory_order_release);
}

std::shared_ptr<FdObject> lookup(int fd) {
  if (g_count.load(std::memory_order_acquire) == 0) return nullptr;
  Entry e;
  {
    std::lock_guard<std::mutex> lock(mu());
    auto it = map().find(fd);
    if (it == map().end()) return nullptr;
    e = it->second;
  }
  dev_t dev;
  ino_t ino;
  if (identity(fd, dev, ino) && dev == e.dev && ino == e.ino) return e.obj;
  // Closed without our close() and the number reused (or not open at all): forget the entry.
  std::shared_ptr<FdObject> dropped;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu());
  auto it = map().find(fd);
  if (it != map().end() && it->second.obj == e.obj) {
    dropped = std::move(it->second.obj);
    map().erase(it);
    g_count.store(map().size(), std::memory_order_release);
  }
  return nullptr;
}

bool remove(int fd) {
  if (g_count.load(std::memory_order_acquire) == 0) return false;
  std::shared_ptr<FdObject> dropped;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu());
  auto it = map().find(fd);
  if (it == map().end()) return false;
  dropped = std::move(it->second.obj);
  map().erase(it);
  g_count.store(map().size(), std::memory_order_release);
  return true;
}

void remove_range(unsigned first, unsigned last) {
  if (g_count.load(std::memory_order_acquire) == 0) return;
  std::lock_guard<std::mutex> lock(mu());
  for (auto it = map().begin(); it != map().end();) {
    unsigned fd = unsigned(it->first);
    if (fd >= first && fd <= last)
      it = map().erase(it);
    else
      ++it;
  }
  g_count.store(map().size(), std::memory_order_release);
}

bool empty() { return g_count.load(std::memory_order_acquire) == 0; }

}  // namespace sevemu::fd_table
