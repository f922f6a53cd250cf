/* Waits with a signal mask of their own: pselect, ppoll and epoll_pwait
 * let in, for the wait only, a signal the thread otherwise blocks (what
 * GNU make's -j job server does with SIGCHLD). A signal already pending
 * runs its handler at once and the call fails with EINTR; one that comes
 * during the wait ends it with EINTR even with SA_RESTART (Linux never
 * restarts these calls); afterwards the old mask is back. A child's end
 * (SIGCHLD from the kernel and from the DC) ends a pselect too. Prints
 * the same natively and in a DC. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;

static void on_sig(int sig) { got = sig; }

static void handle(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

static const char *err(int r) { return r < 0 ? strerror(errno) : "ready"; }

/* Blocks `sig`; sends it to ourselves now (pending) or from a child
 * after 100 ms (during the wait); then waits with `sig` let in. */
static void run(const char *name, int sig, int later, int (*wait)(int, const sigset_t *))
{
    sigset_t block, open, now;
    sigemptyset(&block);
    sigaddset(&block, sig);
    sigprocmask(SIG_BLOCK, &block, NULL);
    int p[2];
    if (pipe(p) != 0) {
        perror("pipe");
        exit(1);
    }
    got = 0;
    pid_t c = -1;
    if (later) {
        c = fork();
        if (c == 0) {
            usleep(100000);
            kill(getppid(), sig);
            _exit(0);
        }
    } else {
        kill(getpid(), sig);
    }
    sigprocmask(SIG_SETMASK, NULL, &open);
    sigdelset(&open, sig);
    errno = 0;
    int r = wait(p[0], &open);
    const char *what = err(r);
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("%-12s %-7s r=%d %s handler=%d still blocked=%d\n", name, later ? "later" : "pending",
           r, what, got == sig, sigismember(&now, sig));
    if (c > 0)
        waitpid(c, NULL, 0);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    close(p[0]);
    close(p[1]);
}

static int by_pselect(int fd, const sigset_t *m)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fd, &rd);
    struct timespec t = {5, 0};
    return pselect(fd + 1, &rd, NULL, NULL, &t, m);
}

static int by_ppoll(int fd, const sigset_t *m)
{
    struct pollfd p = {fd, POLLIN, 0};
    struct timespec t = {5, 0};
    return ppoll(&p, 1, &t, m);
}

static int by_epoll(int fd, const sigset_t *m)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    int r = epoll_pwait(ep, &ev, 1, 5000, m);
    int e = errno;
    close(ep);
    errno = e;
    return r;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    handle(SIGUSR1, 0);
    handle(SIGUSR2, SA_RESTART);
    run("pselect", SIGUSR1, 0, by_pselect);
    run("pselect", SIGUSR1, 1, by_pselect);
    run("pselect", SIGUSR2, 1, by_pselect);
    run("ppoll", SIGUSR1, 0, by_ppoll);
    run("ppoll", SIGUSR2, 1, by_ppoll);
    run("epoll_pwait", SIGUSR1, 0, by_epoll);
    run("epoll_pwait", SIGUSR2, 1, by_epoll);

    /* make's loop: SIGCHLD blocked, children started, pselect with it
     * let in until every child is reaped. */
    handle(SIGCHLD, 0);
    sigset_t chld, open;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &open);
    int left = 0;
    for (int i = 0; i < 4; i++) {
        pid_t c = fork();
        if (c == 0) {
            usleep(20000 * (i + 1));
            _exit(i);
        }
        left++;
    }
    int wakeups = 0, sum = 0;
    while (left > 0) {
        int st;
        pid_t c;
        while ((c = waitpid(-1, &st, WNOHANG)) > 0) {
            sum += WEXITSTATUS(st);
            left--;
        }
        if (left == 0)
            break;
        struct timespec t = {5, 0};
        int r = pselect(0, NULL, NULL, NULL, &t, &open);
        if (r < 0 && errno == EINTR)
            wakeups++;
        else {
            printf("pselect gave %d %s\n", r, err(r));
            break;
        }
    }
    printf("children reaped, statuses sum %d, woken %s\n", sum, wakeups > 0 ? "yes" : "no");
    return 0;
}
