/* Threads look users up (NSS: files opened, read and closed inside
 * glibc) while the main thread makes its first setlocale, at which, in a
 * DC, the preload would patch those glibc functions: under running
 * threads it must not (a thread inside __read_nocancel's syscall resumed
 * in the middle of the jump and crashed). Every lookup must succeed. */
#include <locale.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static atomic_int stop, bad, lookups;

static void *look_up(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        struct passwd pw, *r = NULL;
        char buf[1024];
        if (getpwuid_r(0, &pw, buf, sizeof buf, &r) != 0 || !r || strcmp(r->pw_name, "root") != 0)
            atomic_fetch_add(&bad, 1);
        atomic_fetch_add(&lookups, 1);
    }
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, look_up, NULL);
    while (atomic_load(&lookups) < 50) {
    }
    if (!setlocale(LC_ALL, "")) puts("setlocale failed");
    int seen = atomic_load(&lookups);
    while (atomic_load(&lookups) < seen + 200) {
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    printf("failed lookups: %d\n", atomic_load(&bad));
    return 0;
}
