/* Thread churn: a process that starts and joins thread after thread (as a
 * server with a thread per request does) must not accumulate descriptors.
 * Each thread makes a few calls; the program prints how many threads ran,
 * and whether the descriptor count stayed flat (a small slack is allowed
 * for the last threads, whose resources go with the next ones). */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void *work(void *arg) {
    struct stat st;
    if (stat("/", &st) != 0 || getppid() <= 0)
        return (void *)1;
    return arg;
}

static int fds(void) {
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int before = fds(), ran = 0;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, work, NULL) != 0 || pthread_join(t, &r) != 0) {
            printf("thread %d failed\n", i);
            return 1;
        }
        ran += r == NULL;
    }
    int grew = fds() - before;
    printf("%d threads ran, descriptors %s\n", ran, grew <= 4 ? "flat" : "leaked");
    if (grew > 4)
        fprintf(stderr, "descriptors grew by %d\n", grew);
    return grew > 4;
}
