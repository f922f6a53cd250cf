/*
 * syscalls.c: times `stat(path)` and `pread(fd, buf, 4096, 0)` on a 4 KiB
 * file, for bench/run.sh. The same binary runs natively, under dvs-exec
 * (calls served by the DC's FS over M3-IPC) and under proot (ptrace).
 * It also times a call that is never served, a `futex` wake with no
 * waiter: what any host call costs a process in a DC (the seccomp net's
 * filter runs on every call that it cannot rule out by number alone).
 *
 * usage: syscalls FILE [N]
 *   FILE  an existing file of at least 4096 bytes
 *   N     iterations per call (default 20000), split into ROUNDS rounds;
 *         the figure printed is the median round, in ns per call
 *
 * output (one line per call, machine-readable):
 *   stat_ns=<ns/op>
 *   pread4k_ns=<ns/op>
 *   host_ns=<ns/op>    (the futex wake)
 *   pid=<getpid()>     (2 in a DC: the run script checks it)
 * Exits non-zero (with a message on stderr) if any call fails or returns
 * something unexpected, so a broken run never prints a number.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 9
#define WARMUP 200

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what)
{
    fprintf(stderr, "syscalls: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void do_stat(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        die("stat");
    if (sb.st_size < 4096) {
        errno = EINVAL;
        die("stat: file smaller than 4096 bytes");
    }
}

static char buf[4096];

static void do_pread(int fd)
{
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n != (ssize_t)sizeof buf) {
        if (n >= 0)
            errno = EIO;
        die("pread");
    }
}

static int futex_word;

static void do_host_call(void)
{
    if (syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) != 0)
        die("futex");
}

/* Median over ROUNDS rounds of `per` calls, in ns per call. */
#define TIME_IT(result, per, call)                                    \
    do {                                                              \
        double r_[ROUNDS];                                            \
        for (int w_ = 0; w_ < WARMUP; w_++)                           \
            call;                                                     \
        for (int k_ = 0; k_ < ROUNDS; k_++) {                         \
            double t0_ = now_ns();                                    \
            for (long i_ = 0; i_ < (per); i_++)                       \
                call;                                                 \
            r_[k_] = (now_ns() - t0_) / (double)(per);                \
        }                                                             \
        qsort(r_, ROUNDS, sizeof r_[0], cmp_double);                  \
        (result) = r_[ROUNDS / 2];                                    \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FILE [N]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    long n = argc == 3 ? strtol(argv[2], NULL, 10) : 20000;
    if (n < ROUNDS) {
        fprintf(stderr, "syscalls: N must be at least %d\n", ROUNDS);
        return 2;
    }
    long per = n / ROUNDS;

    double stat_ns, pread_ns;
    TIME_IT(stat_ns, per, do_stat(path));

    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die("open");
    TIME_IT(pread_ns, per, do_pread(fd));
    if (close(fd) != 0)
        die("close");

    double host_ns;
    TIME_IT(host_ns, per * 10, do_host_call());

    printf("stat_ns=%.0f\n", stat_ns);
    printf("pread4k_ns=%.0f\n", pread_ns);
    printf("host_ns=%.0f\n", host_ns);
    printf("pid=%d\n", (int)getpid());
    return 0;
}
