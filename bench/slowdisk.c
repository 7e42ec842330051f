/* slowdisk: an LD_PRELOAD shim that makes one file as slow as a busy SD card.
 *
 * Every write(2), writev(2), fsync(2) and fdatasync(2) on a regular file whose path starts
 * with $SLOWDISK_PATH sleeps $SLOWDISK_DELAY_MS milliseconds (default 300) first, then does
 * the real call. Other files, pipes and sockets are untouched. Used by bench/run.sh's
 * slow-disk scenario (BENCHMARKS.md, "Slow disk"); Linux and glibc only.
 *
 *   cc -O2 -shared -fPIC -o slowdisk.so bench/slowdisk.c -ldl
 *   SLOWDISK_PATH=/tmp/h.jsonl LD_PRELOAD=$PWD/slowdisk.so wschat --history-file /tmp/h.jsonl
 *
 * The prefix also covers the history file's temporary twin (h.jsonl -> h.tmp) when given
 * without the extension, e.g. SLOWDISK_PATH=/tmp/h.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const char *slow_prefix(void) {
    static const char *prefix;
    static int looked;
    if (!looked) {
        prefix = getenv("SLOWDISK_PATH");
        looked = 1;
    }
    return prefix && *prefix ? prefix : NULL;
}

/* True when fd is a regular file under the prefix: one fstat for every call, a readlink only
 * for regular files (the server's sockets and log pipes never get that far). */
static int is_slow(int fd) {
    const char *prefix = slow_prefix();
    struct stat st;
    char link[64], path[4096];
    ssize_t n;
    if (!prefix || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return 0;
    path[n] = '\0';
    return strncmp(path, prefix, strlen(prefix)) == 0;
}

static void delay(int fd) {
    static long delay_ms = -1;
    struct timespec ts;
    if (!is_slow(fd))
        return;
    if (delay_ms < 0) {
        const char *v = getenv("SLOWDISK_DELAY_MS");
        delay_ms = v ? atol(v) : 300;
    }
    ts.tv_sec = delay_ms / 1000;
    ts.tv_nsec = (delay_ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0) {
    }
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);

/* The real function (glibc's), looked up once. */
#define REAL(name, type)                                                                     \
    static type real_##name;                                                                 \
    if (!real_##name)                                                                        \
        real_##name = (type)dlsym(RTLD_NEXT, #name);

ssize_t write(int fd, const void *buf, size_t count) {
    REAL(write, write_fn)
    delay(fd);
    return real_write(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    REAL(writev, writev_fn)
    delay(fd);
    return real_writev(fd, iov, iovcnt);
}

int fsync(int fd) {
    REAL(fsync, sync_fn)
    delay(fd);
    return real_fsync(fd);
}

int fdatasync(int fd) {
    REAL(fdatasync, sync_fn)
    delay(fd);
    return real_fdatasync(fd);
}
