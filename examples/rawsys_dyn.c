/* A dynamic program that makes its process and file calls through
 * glibc's syscall(2), bypassing the libc entry points the preload
 * interposes, and a few with a `syscall` instruction of its own. Under
 * dvs-exec they must get DC semantics: syscall(2) from the preload, the
 * instructions from the seccomp net.
 * Usage: rawsys_dyn FILE [HOST-PID-TO-KILL]
 * Prints its PID, the first line of FILE (or the openat error), both
 * ways, the result of killing HOST-PID, and a child's PID/PPID/exit
 * status. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* A system call from this program's own code: -errno on failure. */
static long insn(long nr, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

int main(int argc, char **argv) {
    long pid = syscall(SYS_getpid);
    printf("getpid=%ld\n", pid);
    printf("insn getpid=%ld\n", insn(SYS_getpid, 0, 0, 0, 0));
    if (argc > 1) {
        long fd = insn(SYS_openat, AT_FDCWD, (long)argv[1], O_RDONLY, 0);
        if (fd < 0) {
            printf("insn openat: errno %ld\n", -fd);
        } else {
            char buf[128];
            long n = insn(SYS_read, fd, (long)buf, sizeof buf - 1, 0);
            buf[n > 0 ? n : 0] = 0;
            char *nl = strchr(buf, '\n');
            if (nl) *nl = 0;
            printf("insn read %ld: %s\n", n, buf);
            insn(SYS_close, fd, 0, 0, 0);
        }
    }
    if (argc > 1) {
        long fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_RDONLY, 0);
        if (fd < 0) {
            printf("openat: errno %d\n", errno);
        } else {
            char buf[128];
            long n = syscall(SYS_read, fd, buf, sizeof buf - 1);
            buf[n > 0 ? n : 0] = 0;
            char *nl = strchr(buf, '\n');
            if (nl) *nl = 0;
            printf("read %ld: %s\n", n, buf);
            syscall(SYS_close, fd);
        }
    }
    if (argc > 2) {
        long r = syscall(SYS_kill, atol(argv[2]), SIGKILL);
        printf("kill host pid: %ld errno %d\n", r, r < 0 ? errno : 0);
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        printf("child getpid=%ld getppid=%ld\n", syscall(SYS_getpid), syscall(SYS_getppid));
        fflush(stdout);
        pause();
        _exit(9);
    }
    usleep(100000);
    long k = syscall(SYS_kill, (long)child, SIGTERM);
    int st = 0;
    long w = syscall(SYS_wait4, (long)child, &st, 0, NULL);
    printf("fork=%d kill=%ld wait4=%ld signaled=%d sig=%d\n", child, k, w,
           WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    long raw_fork = syscall(SYS_fork);
    if (raw_fork == 0) _exit(0);
    printf("raw fork: %ld errno %d\n", raw_fork, raw_fork < 0 ? errno : 0);
    long raw_clone = syscall(SYS_clone, (long)SIGCHLD, 0L, 0L, 0L, 0L);
    if (raw_clone == 0) _exit(0);
    printf("raw clone: %ld errno %d\n", raw_clone, raw_clone < 0 ? errno : 0);
    long args[11] = {0};
    args[4] = SIGCHLD; /* exit_signal */
    long raw_clone3 = syscall(SYS_clone3, args, sizeof args);
    if (raw_clone3 == 0) _exit(0);
    printf("raw clone3: %ld errno %d\n", raw_clone3, raw_clone3 < 0 ? errno : 0);
    return 0;
}
