// The real libc entry points behind the ones this library interposes (dlsym RTLD_NEXT).
// Everything the emulator does with files goes through these, never through the
// interposed names, so internal I/O cannot recurse into the emulator.
#pragma once

#include <stdio.h>
#include <sys/types.h>

namespace sevemu::real {

int open(const char* path, int flags, mode_t mode = 0);
int openat(int dirfd, const char* path, int flags, mode_t mode = 0);
int close(int fd);
int ioctl(int fd, unsigned long req, void* arg);
int dup(int fd);
int dup2(int oldfd, int newfd);
int dup3(int oldfd, int newfd, int flags);
int fcntl(int fd, int cmd, long arg);
int access(const char* path, int mode);
int faccessat(int dirfd, const char* path, int mode, int flags);
int close_range(unsigned first, unsigned last, int flags);
FILE* fopen(const char* path, const char* mode);
// Straight system calls (nothing else in the process interposes these paths).
int mkdirat(int dirfd, const char* path, mode_t mode);
int rmdir(const char* path);
FILE* fopen64(const char* path, const char* mode);

}  // namespace sevemu::real
