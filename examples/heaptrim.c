/* A thread fills and empties its own malloc heap after setlocale: glibc
 * then trims the heap and, the first time, reads
 * /proc/sys/vm/overcommit_memory from inside malloc with the heap's arena
 * locked. In a DC that read is one of glibc's own file calls, which the
 * preload serves once setlocale had it patch libc: it must not allocate
 * there (the program hung). */
#include <locale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { CHUNKS = 1000, CHUNK = 32 * 1024 };

static void *fill_and_free(void *arg) {
    (void)arg;
    static char *p[CHUNKS];
    for (int i = 0; i < CHUNKS; i++) p[i] = malloc(CHUNK);
    for (int i = CHUNKS - 1; i >= 0; i--) free(p[i]);
    return NULL;
}

int main(void) {
    setlocale(LC_ALL, "");
    for (int round = 0; round < 3; round++) {
        pthread_t t;
        pthread_create(&t, NULL, fill_and_free, NULL);
        pthread_join(t, NULL);
    }
    puts("heap trimmed three times");
    return 0;
}
