/* Threads see themselves: every thread of a process that starts thread
 * after thread (as a server with a thread per request does) must find
 * itself at /proc/thread-self, whether it is the first to run or follows
 * threads that ended (in a DC it may take over an ended thread's
 * endpoint). Threads run one at a time, then four at a time; each names
 * itself and reads its name back. The program prints how many threads
 * ran and how many did not see their own name. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* NULL when the thread saw itself; otherwise which check failed. */
static void *work(void *arg) {
    long i = (long)arg;
    char want[16], got[32] = "";
    snprintf(want, sizeof want, "self%ld", i % 10000);
    if (pthread_setname_np(pthread_self(), want) != 0)
        return (void *)1;
    FILE *f = fopen("/proc/thread-self/comm", "r");
    if (!f)
        return (void *)2;
    int ok = fgets(got, sizeof got, f) != NULL;
    fclose(f);
    got[strcspn(got, "\n")] = 0;
    if (!ok || strcmp(got, want) != 0)
        return (void *)3;
    return NULL;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 60;
    int ran = 0, failed = 0;
    for (int i = 0; i < rounds; i++) {
        /* One thread alone, then four at once. */
        for (int width = 1; width <= 4; width += 3) {
            pthread_t t[4];
            for (int j = 0; j < width; j++)
                if (pthread_create(&t[j], NULL, work, (void *)(long)ran + j) != 0) {
                    printf("thread %d failed to start\n", ran + j);
                    return 1;
                }
            for (int j = 0; j < width; j++) {
                void *r;
                if (pthread_join(t[j], &r) != 0) {
                    printf("thread %d failed to join\n", ran + j);
                    return 1;
                }
                if (r != NULL && failed++ < 5)
                    printf("thread %d: check %ld failed\n", ran + j, (long)r);
            }
            ran += width;
        }
    }
    printf("%d threads ran, %d did not see themselves\n", ran, failed);
    return failed > 0;
}
