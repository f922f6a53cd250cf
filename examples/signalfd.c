/* signalfd: blocked signals read as records from a descriptor that poll
 * watches with the others: a kill to the process, a child's end
 * (SIGCHLD with its status), a mask changed on the same descriptor, and
 * a non-blocking read with nothing pending. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static void next(int fd, const char *what) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, 5000);
    struct signalfd_siginfo si;
    ssize_t n = r > 0 ? read(fd, &si, sizeof si) : -1;
    if (n != (ssize_t)sizeof si) {
        printf("%s: poll %d, read %zd\n", what, r, n);
        return;
    }
    printf("%s: %s code %d", what, strsignal((int)si.ssi_signo), si.ssi_code);
    if (si.ssi_signo == SIGCHLD)
        printf(" status %d", si.ssi_status);
    printf("\n");
}

int main(void) {
    sigset_t m;
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, NULL);
    int fd = signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
    printf("signalfd: %s, cloexec %d\n", fd >= 0 ? "ok" : strerror(errno),
           (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    struct signalfd_siginfo si;
    ssize_t n = read(fd, &si, sizeof si);
    int e = errno;
    printf("nothing pending: %zd %s\n", n, strerror(e));

    kill(getpid(), SIGUSR1);
    next(fd, "kill");

    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    printf("same descriptor: %d\n", signalfd(fd, &m, 0) == fd);
    kill(getpid(), SIGUSR2);
    next(fd, "added to the mask");
    int r = signalfd(0, &m, 0);
    e = errno;
    printf("not a signalfd: %d %s\n", r, strerror(e));

    /* Last: in a DC a second SIGCHLD follows (PM's, once the status can
     * be collected). */
    pid_t c = fork();
    if (c == 0)
        _exit(7);
    next(fd, "child");
    waitpid(c, NULL, 0);
    close(fd);
    return 0;
}
