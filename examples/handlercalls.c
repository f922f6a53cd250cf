/* A signal handler that makes calls of its own while the thread is in a
 * call: libuv's SIGCHLD handler reads a byte from a lock pipe, writes one
 * to the loop's signal pipe, and gives the lock back. Here children end
 * while the main thread waits in epoll_wait and while it makes quick
 * calls (fstat, close, dup, waitpid with WNOHANG); every handler run must
 * see its reads and writes succeed, and the loop every signal byte. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int lockp[2], sigp[2];
static volatile sig_atomic_t runs, failed;

static void onchld(int s, siginfo_t *i, void *u) {
    char c;
    int e = errno;
    runs++;
    if (read(lockp[0], &c, 1) != 1)
        failed++;
    else {
        if (write(sigp[1], "s", 1) != 1)
            failed++;
        if (write(lockp[1], "l", 1) != 1)
            failed++;
    }
    errno = e;
}

static void child(int n) {
    pid_t p = fork();
    if (p == 0) {
        usleep(20000 * n);
        _exit(n);
    }
}

int main(void) {
    if (pipe(lockp) || pipe(sigp) || write(lockp[1], "l", 1) != 1)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onchld;
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigfillset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = sigp[0]};
    epoll_ctl(ep, EPOLL_CTL_ADD, sigp[0], &ev);
    /* Children end while the thread waits in epoll_wait. */
    for (int n = 1; n <= 3; n++)
        child(n);
    int bytes = 0;
    while (bytes < 3) {
        struct epoll_event out[4];
        int n = epoll_wait(ep, out, 4, 5000);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        /* A read of a pipe can wait at its server: a handler that came
         * during it would still run at once in a DC, and its calls fail
         * (see ARCHITECTURE), so SIGCHLD waits for its end here. */
        char b[8];
        sigset_t chld, old;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, &old);
        int r = read(sigp[0], b, sizeof b);
        sigprocmask(SIG_SETMASK, &old, 0);
        if (r > 0)
            bytes += r;
    }
    /* The same for a write to the output (a late SIGCHLD: PM sends one
     * more once a child's status can be collected). */
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    printf("while waiting: at least 3 signal bytes: %d\n", bytes >= 3);
    fflush(stdout);
    sigprocmask(SIG_SETMASK, &old, 0);
    /* Children end while the thread makes quick calls. */
    for (int n = 1; n <= 3; n++)
        child(n);
    struct stat st;
    for (int k = 0; k < 20000 && runs < 6; k++) {
        fstat(0, &st);
        close(dup(2));
    }
    /* Reaped as libuv does, without waiting in waitpid. */
    int reaped = 0;
    for (int k = 0; k < 5000 && reaped < 6; k++) {
        if (waitpid(-1, 0, WNOHANG) > 0)
            reaped++;
        else
            usleep(1000);
    }
    printf("children reaped: %d, handler runs: %d, failed calls in handlers: %d\n", reaped,
           runs >= 6, failed);
    return 0;
}
