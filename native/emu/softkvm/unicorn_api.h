// The Unicorn CPU emulator, loaded on first use of the software KVM (dlopen), so that programs
// run under `sev-emu` without `--kvm soft` never load its 20 MB, and a machine without Unicorn
// still runs everything else. Unicorn is GPL-2.0: see README.md in this directory.
#pragma once

#include <unicorn/unicorn.h>

namespace sevemu::softkvm {

// The entry points the software KVM uses, resolved from libunicorn.so.2.
struct UnicornApi {
  decltype(&::uc_version) version;
  decltype(&::uc_open) open;
  decltype(&::uc_close) close;
  decltype(&::uc_strerror) strerror;
  decltype(&::uc_mem_map_ptr) mem_map_ptr;
  decltype(&::uc_mmio_map) mmio_map;
  decltype(&::uc_mem_unmap) mem_unmap;
  decltype(&::uc_mem_read) mem_read;
  decltype(&::uc_mem_write) mem_write;
  decltype(&::uc_reg_read) reg_read;
  decltype(&::uc_reg_write) reg_write;
  decltype(&::uc_hook_add) hook_add;
  decltype(&::uc_hook_del) hook_del;
  decltype(&::uc_emu_start) emu_start;
  decltype(&::uc_emu_stop) emu_stop;
  decltype(&::uc_ctl) ctl;
  decltype(&::uc_context_alloc) context_alloc;
  decltype(&::uc_context_save) context_save;
  decltype(&::uc_context_restore) context_restore;
  decltype(&::uc_context_size) context_size;
  decltype(&::uc_context_free) context_free;
};

// The loaded API, or null when libunicorn.so.2 (>= 2.1) cannot be loaded; then
// unicorn_unavailable_reason() says why and what to install.
const UnicornApi* unicorn();
const char* unicorn_unavailable_reason();

}  // namespace sevemu::softkvm
