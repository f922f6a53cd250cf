/* Files the C library maps for itself, with descriptors it opens inside
 * libc (not through open/mmap): locale data (setlocale, multibyte
 * conversions), named semaphores shared with a child (sem_open), and
 * iconv's conversion modules. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <locale.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

static void locales(void) {
    const char *utf8 = "gr\xc3\xbc\xc3\x9f dich, \xe2\x82\xac"; /* "grüß dich, €" */
    char *r = setlocale(LC_ALL, "C.UTF-8");
    printf("setlocale(C.UTF-8): %s\n", r ? r : "(failed)");
    printf("multibyte characters: %zd of %zu bytes\n", (ssize_t)mbstowcs(NULL, utf8, 0), strlen(utf8));
    wchar_t w[32];
    size_t n = mbstowcs(w, utf8, 32);
    printf("wide: %zu, euro is U+%04X, MB_CUR_MAX %zu\n", n, n != (size_t)-1 ? (unsigned)w[n - 1] : 0,
           MB_CUR_MAX);
    setlocale(LC_ALL, "C");
    printf("in C: %zd\n", (ssize_t)mbstowcs(NULL, utf8, 0));
}

static void semaphores(void) {
    char name[64];
    snprintf(name, sizeof name, "/dvs-libcmaps-%d", getpid());
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    if (s == SEM_FAILED) {
        printf("sem_open: %s\n", strerror(errno));
        return;
    }
    pid_t c = fork();
    if (c == 0) {
        sem_post(s);
        sem_post(s);
        _exit(0);
    }
    int st = 0;
    waitpid(c, &st, 0);
    int v = -1;
    sem_getvalue(s, &v);
    printf("semaphore after the child's two posts: %d\n", v);
    int w = sem_wait(s);
    int t1 = sem_trywait(s);
    int t2 = sem_trywait(s);
    printf("wait: %d, trywait: %d, trywait again: %d (%s)\n", w, t1, t2, strerror(errno));
    sem_close(s);
    int u = sem_unlink(name);
    printf("unlink: %d, open again: %s\n", u, sem_open(name, 0) == SEM_FAILED ? strerror(errno) : "still there");
}

static void conversions(void) {
    iconv_t cd = iconv_open("UTF-16LE", "UTF-8");
    if (cd == (iconv_t)-1) {
        printf("iconv_open: %s\n", strerror(errno));
        return;
    }
    char in[] = "h\xc3\xa9llo", out[32];
    char *ip = in, *op = out;
    size_t il = strlen(in), ol = sizeof out;
    size_t r = iconv(cd, &ip, &il, &op, &ol);
    printf("iconv UTF-8 -> UTF-16LE: %zd, %zu bytes:", (ssize_t)r, sizeof out - ol);
    for (char *p = out; p < op; p++)
        printf(" %02x", (unsigned char)*p);
    printf("\n");
    iconv_close(cd);
}

int main(void) {
    locales();
    semaphores();
    conversions();
    return 0;
}
