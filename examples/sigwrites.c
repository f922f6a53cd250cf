/* Signal handlers that write: a fast interval timer's SIGALRM handler
 * writes one byte to a pipe (what an event loop's wake-up descriptor
 * gets) while the main thread makes system calls in a loop. Every byte a
 * handler wrote must arrive, wherever the signal lands in a call. Then
 * one alarm while the thread waits in poll() for that pipe: the handler's
 * byte must end the wait (the handler restarts calls, SA_RESTART).
 * Prints the same natively and in a DC. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static int wfd;
static volatile sig_atomic_t written, failed;

static void on_alarm(int sig)
{
    (void)sig;
    int e = errno;
    if (write(wfd, "x", 1) == 1)
        written++;
    else
        failed++;
    errno = e;
}

static long drain(int rfd)
{
    char buf[4096];
    long got = 0;
    ssize_t n;
    while ((n = read(rfd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0)
            got += n;
    return got;
}

int main(void)
{
    int p[2];
    if (pipe2(p, O_NONBLOCK) != 0) {
        perror("pipe2");
        return 1;
    }
    wfd = p[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &it, NULL);

    long got = 0;
    struct stat st;
    for (int i = 0; i < 10000; i++) {
        fstat(p[0], &st);
        if (i % 64 == 0)
            got += drain(p[0]);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    got += drain(p[0]);
    printf("handler writes: %s\n", written > 0 ? "some" : "none");
    printf("failed writes: %d\n", (int)failed);
    printf("lost bytes: %ld\n", (long)written - got);

    struct itimerval once = {{0, 0}, {0, 100000}};
    setitimer(ITIMER_REAL, &once, NULL);
    struct pollfd pfd = {p[0], POLLIN, 0};
    int n;
    do
        n = poll(&pfd, 1, 10000);
    while (n < 0 && errno == EINTR);
    printf("poll woken by the handler's byte: %d %d\n", n, n == 1 && (pfd.revents & POLLIN));
    return 0;
}
