/* raise() as a program sees it: the handler runs before raise returns,
 * with the siginfo of a tgkill from the process itself (SI_TKILL, its own
 * pid and uid); a blocked signal stays pending until it is unblocked; a
 * thread's raise reaches that thread; bad signal numbers fail with EINVAL;
 * and thousands of raises each run the handler once. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t runs, code_ok, pid_ok, uid_ok;
static pthread_t handled_in;

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    runs++;
    code_ok = si->si_code == SI_TKILL;
    pid_ok = si->si_pid == getpid();
    uid_ok = si->si_uid == getuid();
    handled_in = pthread_self();
}

static void *raiser(void *arg) {
    (void)arg;
    raise(SIGUSR2);
    return (void *)(pthread_self() == handled_in ? "yes" : "no");
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    int r = raise(SIGUSR1);
    printf("raise: %d, handler ran before it returned: %d\n", r, runs);
    printf("siginfo: SI_TKILL %d, si_pid is getpid() %d, si_uid is getuid() %d\n",
           code_ok, pid_ok, uid_ok);

    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, NULL);
    runs = 0;
    raise(SIGUSR1);
    sigpending(&pending);
    printf("blocked: handler ran %d, pending %d\n", runs, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("unblocked: handler ran %d\n", runs);

    pthread_t t;
    void *in_thread = "no";
    pthread_create(&t, NULL, raiser, NULL);
    pthread_join(t, &in_thread);
    printf("a thread's raise ran the handler in that thread: %s\n", (char *)in_thread);

    errno = 0;
    r = raise(0);
    printf("raise(0): %d\n", r);
    errno = 0;
    r = raise(999);
    printf("raise(999): %d %s\n", r, strerror(errno));

    runs = 0;
    for (int i = 0; i < 5000; i++)
        raise(SIGUSR1);
    printf("5000 raises ran the handler %d times\n", runs);

    signal(SIGUSR1, SIG_IGN);
    r = raise(SIGUSR1);
    printf("ignored: raise %d\n", r);
    return 0;
}
