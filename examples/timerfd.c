/* timerfd: a timer read as a descriptor, as event loops use it. A one-shot
 * timer, a periodic one read while blocking, readiness through poll, the
 * time left, disarming, a non-blocking read of a disarmed timer, and
 * timerfd calls on descriptors that are not timers. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/timerfd.h>
#include <unistd.h>

static void arm(int fd, long first_ms, long every_ms) {
    struct itimerspec t = {
        .it_value = {first_ms / 1000, first_ms % 1000 * 1000000},
        .it_interval = {every_ms / 1000, every_ms % 1000 * 1000000},
    };
    if (timerfd_settime(fd, 0, &t, NULL) != 0)
        printf("settime: errno %d\n", errno);
}

int main(void) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    if (fd < 0) {
        printf("timerfd_create: errno %d\n", errno);
        return 1;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    arm(fd, 100, 0);
    printf("armed, ready at once: %d\n", poll(&p, 1, 0));
    struct itimerspec left;
    timerfd_gettime(fd, &left);
    printf("time left in (0, 100 ms]: %d\n",
           left.it_value.tv_sec == 0 && left.it_value.tv_nsec > 0 &&
               left.it_value.tv_nsec <= 100000000);
    printf("ready within 2 s: %d\n", poll(&p, 1, 2000));
    uint64_t n = 0;
    ssize_t r = read(fd, &n, sizeof n);
    printf("read %zd, expirations %llu\n", r, (unsigned long long)n);

    /* Periodic: a blocking read waits for the first expiry. */
    arm(fd, 30, 30);
    n = 0;
    r = read(fd, &n, sizeof n);
    printf("periodic read %zd, at least one: %d\n", r, n >= 1);
    struct itimerspec old, off = {{0, 0}, {0, 0}};
    timerfd_settime(fd, 0, &off, &old);
    printf("old interval 30 ms: %d\n", old.it_interval.tv_sec == 0 && old.it_interval.tv_nsec == 30000000);

    /* Disarmed and non-blocking: nothing to read. */
    int nb = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
    r = read(nb, &n, sizeof n);
    printf("disarmed read %zd errno %d\n", r, errno);
    r = read(nb, &n, 4);
    printf("short read %zd errno %d\n", r, errno);
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    int e = timerfd_settime(pfd[0], 0, &off, NULL);
    printf("settime on a pipe: %d errno %d\n", e, errno);
    e = timerfd_create(12345, 0);
    printf("bad clock: %d errno %d\n", e, errno);
    return 0;
}
