// configfs-tsm inside an emulated SNP guest (`sev-emu run --guest`): the report interface of
// drivers/virt/coco/guest/report.c (Documentation/ABI/testing/configfs-tsm-report) at
// /sys/kernel/config/tsm/report, with the sev-guest provider behind it.
//
// configfs items are shared by every process of the guest, so each entry is a real directory
// in the state directory (guest/tsm/report/<name>) and the interposed mkdir/rmdir/open map the
// configfs paths onto it:
//   mkdir/rmdir <base>/<name>        create / remove the entry (EEXIST / ENOENT as configfs)
//   inblob, privlevel                writable: written straight into the entry's files; each
//                                    open for writing advances `generation`
//   generation, provider, privlevel_floor   read-only text
//   outblob, auxblob                 read-only: the report (and certificate table) for the
//                                    current inblob/privlevel, generated once per generation
// Deviations, because write(2) is not interposed: a bad privlevel or an inblob that is not 64
// bytes is refused when outblob/auxblob is opened (EINVAL), not by the write. Paths must be
// absolute; stat(2) on them is not emulated (list with open(O_DIRECTORY) instead).
#pragma once

#include <sys/types.h>

namespace sevemu::tsm {

// Each returns true when `path` is a configfs-tsm path (result set, errno on failure).
bool open_path(const char* path, int flags, mode_t mode, int* result);
bool mkdir_path(const char* path, mode_t mode, int* result);
bool rmdir_path(const char* path, int* result);
bool access_path(const char* path, int mode, int* result);

}  // namespace sevemu::tsm
