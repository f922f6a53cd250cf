/*
 * daemon(3): the daemonized process runs on after its parent has left, in
 * a session of its own, in "/", with its standard descriptors on
 * /dev/null, and can still use the descriptors it kept (a pipe here).
 * glibc's daemon forks with an internal fork that a preload cannot see.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    int p[2];
    if (pipe(p) < 0) {
        perror("pipe");
        return 1;
    }
    pid_t first = fork();
    if (first < 0) {
        perror("fork");
        return 1;
    }
    if (first == 0) {
        close(p[0]);
        char line[160];
        if (daemon(0, 0) < 0) {
            int n = snprintf(line, sizeof line, "daemon: %s\n", strerror(errno));
            write(p[1], line, (size_t)n);
            _exit(1);
        }
        char cwd[64] = "";
        struct stat in, null;
        int is_null = fstat(0, &in) == 0 && stat("/dev/null", &null) == 0 &&
                      S_ISCHR(in.st_mode) && in.st_rdev == null.st_rdev;
        int n = snprintf(line, sizeof line,
                         "daemon: new pid %d, session leader %d, cwd %s, stdin /dev/null %d\n",
                         getpid() != first, getsid(0) == getpid(),
                         getcwd(cwd, sizeof cwd) ? cwd : strerror(errno), is_null);
        write(p[1], line, (size_t)n);
        _exit(0);
    }
    close(p[1]);
    int st;
    if (waitpid(first, &st, 0) != first) {
        perror("waitpid");
        return 1;
    }
    printf("first child: exited %d with status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    fflush(stdout);
    char buf[256];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stdout);
    return 0;
}
