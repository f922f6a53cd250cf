/* Process descriptors: pidfd_open, poll on a pidfd, pidfd_send_signal and
 * waitid(P_PIDFD), the way a supervisor or an event loop watches its
 * children. In a DC the pids are DC pids: a pidfd must name the DC
 * process, never the host process that happens to have that number. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static int pidfd_open(pid_t pid, unsigned flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int fd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0);
}

static int readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* Reaps the child behind `fd` and prints how it ended. */
static void reap(const char *what, int fd) {
    siginfo_t si = {0};
    if (waitid(P_PIDFD, fd, &si, WEXITED) != 0) {
        printf("%s: waitid: errno %d\n", what, errno);
        return;
    }
    printf("%s: %s %d\n", what, si.si_code == CLD_EXITED ? "exited" : "killed", si.si_status);
}

int main(void) {
    /* A child that waits to be signalled. */
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(1);
    }
    int fd = pidfd_open(c, 0);
    if (fd < 0) {
        printf("pidfd_open: errno %d\n", errno);
        return 1;
    }
    printf("running child readable: %d\n", readable(fd, 0));
    printf("signal 0: %d\n", pidfd_send_signal(fd, 0));
    printf("SIGTERM: %d\n", pidfd_send_signal(fd, SIGTERM));
    printf("after SIGTERM readable: %d\n", readable(fd, 5000));
    reap("first child", fd);
    close(fd);

    /* A child that has ended already: a zombie still has a pidfd, and it
     * is readable at once. */
    c = fork();
    if (c == 0)
        _exit(7);
    usleep(300 * 1000);
    fd = pidfd_open(c, PIDFD_NONBLOCK);
    if (fd < 0) {
        printf("pidfd_open of a zombie: errno %d\n", errno);
        return 1;
    }
    printf("ended child readable: %d\n", readable(fd, 0));
    reap("second child", fd);
    /* Its process is gone: signalling it fails. */
    int r = pidfd_send_signal(fd, 0);
    printf("signal after reap: %d errno %d\n", r, errno);
    close(fd);

    /* Itself, errors. */
    fd = pidfd_open(getpid(), 0);
    r = pidfd_send_signal(fd, 0);
    printf("self: %s, signal 0: %d\n", fd >= 0 ? "ok" : "failed", r);
    char b;
    ssize_t n = read(fd, &b, 1);
    printf("read on a pidfd: %zd errno %d\n", n, errno);
    close(fd);
    r = pidfd_open(getpid(), 0x1);
    printf("bad flags: %d errno %d\n", r, errno);
    r = pidfd_open(3999999, 0);
    printf("no such process: %d errno %d\n", r, errno);
    r = pidfd_send_signal(1, 0);
    printf("not a pidfd: %d errno %d\n", r, errno);
    return 0;
}
