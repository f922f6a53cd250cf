/* Go-style raw system calls: `syscall` instructions in inline assembly,
 * never through libc's wrappers. Under dvs (tracer or seccomp net) they
 * must get DC semantics. Usage: rawsys FILE [HOST-PID-TO-KILL] */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static long raw(long nr, long a, long b, long c, long d) {
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

static void say(const char *s) { raw(SYS_write, 1, (long)s, (long)strlen(s), 0); }

int main(int argc, char **argv) {
    char line[256];
    long pid = raw(SYS_getpid, 0, 0, 0, 0);
    snprintf(line, sizeof line, "getpid=%ld\n", pid);
    say(line);
    if (argc > 1) {
        long fd = raw(SYS_openat, AT_FDCWD, (long)argv[1], O_RDONLY, 0);
        if (fd < 0) {
            snprintf(line, sizeof line, "openat: %ld\n", fd);
            say(line);
        } else {
            char buf[128];
            long n = raw(SYS_read, fd, (long)buf, sizeof buf - 1, 0);
            buf[n > 0 ? n : 0] = 0;
            snprintf(line, sizeof line, "read %ld: %s", n, buf);
            say(line);
            raw(SYS_close, fd, 0, 0, 0);
        }
    }
    if (argc > 2) {
        long r = raw(SYS_kill, atol(argv[2]), SIGKILL, 0, 0);
        snprintf(line, sizeof line, "kill host pid: %ld\n", r);
        say(line);
    }
    int p[2];
    raw(SYS_pipe2, (long)p, 0, 0, 0);
    long child = raw(SYS_fork, 0, 0, 0, 0);
    if (child == 0) {
        snprintf(line, sizeof line, "child getppid=%ld getpid-is-small=%d\n",
                 raw(SYS_getppid, 0, 0, 0, 0), raw(SYS_getpid, 0, 0, 0, 0) < 100);
        say(line);
        raw(SYS_write, p[1], (long)"x", 1, 0);
        raw(SYS_pause, 0, 0, 0, 0);
        raw(SYS_exit_group, 9, 0, 0, 0);
    }
    char c;
    raw(SYS_read, p[0], (long)&c, 1, 0);
    int st = 0;
    long k = raw(SYS_kill, child, SIGTERM, 0, 0);
    long w = raw(SYS_wait4, child, (long)&st, 0, 0);
    snprintf(line, sizeof line, "fork=%ld kill=%ld wait4 same=%d signaled=%d sig=%d\n", child, k,
             w == child, WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    say(line);
    return 0;
}
