/* epoll_wait made with glibc's syscall(2) and interrupted by a signal
 * whose handler has SA_RESTART: Linux never restarts epoll_wait, so it
 * fails with EINTR, as it does through libc's wrapper. In a DC,
 * syscall(2) is served by the preload (restarted, it waited out its whole
 * timeout and returned 0). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static void on_alarm(int sig) { (void)sig; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    int p[2];
    if (pipe(p) != 0) return 1;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    struct itimerval it = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
    long r = syscall(SYS_epoll_wait, ep, &ev, 1, 3000);
    printf("epoll_wait: %ld %s\n", r, r < 0 ? strerror(errno) : "no error");
    return 0;
}
