// A mutex-protected map plus an atomic count for the "nothing registered" fast path:
// libuv and QEMU call ioctl/close on their own fds constantly, and those calls should
// cost one atomic load when the emulator has nothing open.
#include "fd_table.h"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace sevemu::fd_table {
namespace {

std::mutex& mu() {
  static std::mutex* m = new std::mutex;  // never destroyed: fds may close during exit
  return *m;
}
std::unordered_map<int, std::shared_ptr<FdObject>>& map() {
  static auto* m = new std::unordered_map<int, std::shared_ptr<FdObject>>;
  return *m;
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
  std::lock_guard<std::mutex> lock(mu());
  map()[fd] = std::move(obj);
  g_count.store(map().size(), std::memory_order_release);
}

std::shared_ptr<FdObject> lookup(int fd) {
  if (g_count.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(mu());
  auto it = map().find(fd);
  return it == map().end() ? nullptr : it->second;
}

bool remove(int fd) {
  if (g_count.load(std::memory_order_acquire) == 0) return false;
  std::shared_ptr<FdObject> dropped;  // released outside the lock
  std::lock_guard<std::mutex> lock(mu());
  auto it = map().find(fd);
  if (it == map().end()) return false;
  dropped = std::move(it->second);
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
