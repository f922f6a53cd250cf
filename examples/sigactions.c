/* Signal actions as a program sees them: what sigaction and siginterrupt
 * leave, the arguments handlers get, SA_RESETHAND, and whether a blocking
 * read is interrupted (no SA_RESTART) or goes on (SA_RESTART) when a timer
 * signal or another process's kill arrives. */
#define _GNU_SOURCE
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* siginterrupt */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t plain_runs, info_runs, info_ok;

static void plain(int sig) { (void)sig; plain_runs++; }

static void with_info(int sig, siginfo_t *si, void *uc) {
    info_runs++;
    info_ok = si && si->si_signo == sig && uc != NULL;
}

static void show(int sig, const char *what) {
    struct sigaction o;
    sigaction(sig, NULL, &o);
    const char *h = o.sa_handler == SIG_DFL ? "SIG_DFL"
                  : o.sa_handler == SIG_IGN ? "SIG_IGN"
                  : (void *)o.sa_sigaction == (void *)with_info ? "with_info"
                  : o.sa_handler == plain ? "plain" : "other";
    printf("%-22s handler=%s siginfo=%d restart=%d resethand=%d\n", what, h,
           !!(o.sa_flags & SA_SIGINFO), !!(o.sa_flags & SA_RESTART),
           !!(o.sa_flags & SA_RESETHAND));
}

/* Reads an empty pipe while a timer ticks every 100 ms, with the tick's
 * handler installed with `flags`; a child writes a byte after 550 ms. */
static void read_with_timer(int flags) {
    int p[2];
    char c = '?';
    pipe(p);
    struct sigaction a = {0};
    a.sa_handler = plain;
    a.sa_flags = flags;
    sigaction(SIGALRM, &a, NULL);
    pid_t child = fork();
    if (child == 0) {
        usleep(550000);
        write(p[1], "x", 1);
        _exit(0);
    }
    struct itimerval t = {{0, 100000}, {0, 100000}};
    setitimer(ITIMER_REAL, &t, NULL);
    plain_runs = 0;
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    int e = errno, runs = plain_runs;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    if (r < 0)
        printf("%-10s read -> %zd %s after %d signal(s)\n", flags ? "SA_RESTART" : "no flags",
               r, strerror(e), runs);
    else
        printf("%-10s read -> %zd '%c' after several signals: %d\n",
               flags ? "SA_RESTART" : "no flags", r, c, runs > 1);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    close(p[0]);
    close(p[1]);
}

/* Reads an empty pipe while a child sends SIGUSR1 after 100 ms and
 * writes a byte after 300 ms; the handler is installed by sigaction with
 * `flags`, or by signal() when `flags` is -1. */
static void read_with_kill(int flags) {
    int p[2];
    char c = '?';
    pipe(p);
    if (flags < 0) {
        signal(SIGUSR1, plain);
    } else {
        struct sigaction a = {0};
        a.sa_handler = plain;
        a.sa_flags = flags;
        sigaction(SIGUSR1, &a, NULL);
    }
    pid_t child = fork();
    if (child == 0) {
        usleep(100000);
        kill(getppid(), SIGUSR1);
        usleep(200000);
        write(p[1], "y", 1);
        _exit(0);
    }
    plain_runs = 0;
    errno = 0;
    ssize_t r = read(p[0], &c, 1);
    int e = errno, runs = plain_runs;
    printf("kill, %-10s read -> %zd %s after %d signal(s)\n",
           flags < 0 ? "signal()" : flags ? "SA_RESTART" : "no flags",
           r, r < 0 ? strerror(e) : (c == 'y' ? "'y'" : "?"), runs);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    close(p[0]);
    close(p[1]);
}

int main(void) {
    struct sigaction a = {0}, o;
    show(SIGUSR1, "initially");
    a.sa_handler = plain;
    a.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &a, NULL);
    show(SIGUSR1, "plain, SA_RESTART");
    raise(SIGUSR1);
    printf("plain ran %d\n", plain_runs);

    a.sa_sigaction = with_info;
    a.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigaction(SIGUSR2, &a, &o);
    printf("old of SIGUSR2 was %s\n", o.sa_handler == SIG_DFL ? "SIG_DFL" : "other");
    show(SIGUSR2, "with_info, RESETHAND");
    raise(SIGUSR2);
    printf("with_info ran %d, args ok %d\n", info_runs, info_ok);
    show(SIGUSR2, "after one delivery");

    a.sa_handler = plain;
    a.sa_flags = SA_RESETHAND;
    sigaction(SIGHUP, &a, NULL);
    raise(SIGHUP);
    show(SIGHUP, "plain after RESETHAND");

    a.sa_handler = SIG_IGN;
    a.sa_flags = 0;
    sigaction(SIGUSR1, &a, &o);
    printf("old of SIGUSR1 was %s\n", o.sa_handler == plain ? "plain" : "other");
    show(SIGUSR1, "ignored");
    raise(SIGUSR1);
    printf("plain ran %d\n", plain_runs);
    errno = 0;
    int r = sigaction(SIGKILL, &a, NULL);
    printf("sigaction(SIGKILL) -> %d %s\n", r, strerror(errno));

    read_with_timer(0);
    /* Another signal's handler does not restart calls (as CPython's
     * SIGINT handler): it must not matter for SIGALRM's. */
    a.sa_handler = plain;
    a.sa_flags = 0;
    sigaction(SIGTERM, &a, NULL);
    read_with_timer(SA_RESTART);
    read_with_kill(0);
    read_with_kill(SA_RESTART);
    read_with_kill(-1);
    show(SIGUSR1, "signal()");
    siginterrupt(SIGUSR1, 1);
    show(SIGUSR1, "after siginterrupt 1");
    read_with_kill(-1);
    show(SIGUSR1, "signal() after that");
    printf("signal(0) is SIG_ERR: %d\n", signal(0, plain) == SIG_ERR);
    return 0;
}
