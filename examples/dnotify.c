/* fcntl(F_NOTIFY): SIGIO when a watched directory changes, once or
 * repeatedly (DN_MULTISHOT), and the errors of bad descriptors. Run in a
 * scratch directory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t ios;

static void on_io(int sig) { (void)sig; ios++; }

/* Waits up to 2 s for at least `n` signals, then 100 ms more for extra
 * ones. */
static int wait_for(int n) {
    for (int i = 0; i < 200 && ios < n; i++)
        usleep(10000);
    usleep(100000);
    return ios;
}

static void touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) close(fd);
}

int main(void) {
    struct sigaction a = {0};
    a.sa_handler = on_io;
    a.sa_flags = SA_RESTART;
    sigaction(SIGIO, &a, NULL);
    mkdir("dn", 0755);
    int d = open("dn", O_RDONLY | O_DIRECTORY);

    /* One shot: one signal, then none. */
    printf("one shot: %d\n", fcntl(d, F_NOTIFY, DN_CREATE));
    touch("dn/a");
    printf("signals after a create: %d\n", wait_for(1));
    touch("dn/b");
    printf("signals after another: %d\n", wait_for(1));

    /* Multishot: one signal per change (changes far enough apart). */
    ios = 0;
    printf("multishot: %d\n", fcntl(d, F_NOTIFY, DN_DELETE | DN_MULTISHOT));
    unlink("dn/a");
    printf("signals after a delete: %d\n", wait_for(1));
    unlink("dn/b");
    printf("signals after another: %d\n", wait_for(2));
    touch("dn/c");
    printf("a create is not watched: %d\n", wait_for(2));

    /* Events off: no more signals. */
    ios = 0;
    printf("off: %d\n", fcntl(d, F_NOTIFY, DN_MULTISHOT));
    unlink("dn/c");
    printf("signals after a delete: %d\n", wait_for(0));

    int f = open("dn", O_PATH);
    touch("file");
    int r = open("file", O_RDONLY);
    int fds[3] = {f, r, 99};
    const char *what[3] = {"O_PATH", "a file", "a bad descriptor"};
    for (int i = 0; i < 3; i++) {
        errno = 0;
        int v = fcntl(fds[i], F_NOTIFY, DN_CREATE);
        printf("%s: %d %s\n", what[i], v, strerror(errno));
    }
    close(f);
    close(r);
    close(d);
    unlink("file");
    rmdir("dn");
    return 0;
}
