/* Processes, wait statuses, pipes and file errno values, for a static
 * build (cc -static): tests/static_exec.rs runs it natively and under the
 * dvs tracer and compares the output. Prints nothing host-specific. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void status(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %d\n", what, WTERMSIG(st));
    else
        printf("%s: other %#x\n", what, st);
}

static void err(const char *what, int r) {
    printf("%s: %d %s\n", what, r, r < 0 ? strerror(errno) : "ok");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* fork + exit codes */
    for (int code = 0; code < 3; code++) {
        pid_t c = fork();
        if (c == 0)
            _exit(code * 10);
        int st;
        pid_t w = waitpid(c, &st, 0);
        printf("waited own child: %d\n", w == c);
        status("exit", st);
    }
    /* killed by a signal */
    pid_t c = fork();
    if (c == 0) {
        pause();
        _exit(1);
    }
    kill(c, SIGTERM);
    int st;
    waitpid(c, &st, 0);
    status("sigterm", st);
    /* the child's getpid is what fork returned in the parent */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    c = fork();
    if (c == 0) {
        pid_t me = getpid();
        pid_t parent = getppid();
        if (write(p[1], &me, sizeof me) != sizeof me || write(p[1], &parent, sizeof parent) != sizeof parent)
            _exit(2);
        _exit(0);
    }
    pid_t seen, seen_parent;
    close(p[1]);
    if (read(p[0], &seen, sizeof seen) != sizeof seen || read(p[0], &seen_parent, sizeof seen_parent) != sizeof seen_parent)
        return 1;
    waitpid(c, &st, 0);
    printf("child getpid == fork(): %d, child getppid == getpid(): %d\n", seen == c, seen_parent == getpid());
    /* EOF on a pipe once the writer is gone */
    char b[8];
    printf("read after writer exit: %zd\n", read(p[0], b, sizeof b));
    close(p[0]);
    /* a pipeline: child writes, parent reads */
    if (pipe(p) != 0)
        return 1;
    c = fork();
    if (c == 0) {
        close(p[0]);
        for (int i = 0; i < 1000; i++)
            dprintf(p[1], "line %d\n", i);
        _exit(0);
    }
    close(p[1]);
    long total = 0;
    ssize_t n;
    char buf[4096];
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        total += n;
    close(p[0]);
    waitpid(c, &st, 0);
    printf("pipeline bytes: %ld\n", total);
    /* EPIPE */
    if (pipe(p) != 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    close(p[0]);
    err("write to closed pipe", (int)write(p[1], "x", 1));
    close(p[1]);
    /* file errno values */
    err("open missing", open("no/such/file", O_RDONLY));
    err("open dir for writing", open(".", O_WRONLY));
    int fd = open("static_procs.tmp", O_CREAT | O_EXCL | O_WRONLY, 0600);
    err("create", fd < 0 ? fd : 0);
    err("create again (O_EXCL)", open("static_procs.tmp", O_CREAT | O_EXCL | O_WRONLY, 0600));
    err("write", (int)write(fd, "hello\n", 6));
    close(fd);
    err("close again", close(fd));
    err("notdir", open("static_procs.tmp/x", O_RDONLY));
    struct stat sb;
    err("stat", stat("static_procs.tmp", &sb));
    printf("size: %lld\n", (long long)sb.st_size);
    err("mkdir existing", mkdir(".", 0700));
    mkdir("static_procs.d", 0700);
    close(open("static_procs.d/f", O_CREAT | O_WRONLY, 0600));
    err("rmdir non-empty", rmdir("static_procs.d"));
    unlink("static_procs.d/f");
    err("rmdir", rmdir("static_procs.d"));
    err("unlink", unlink("static_procs.tmp"));
    err("unlink again", unlink("static_procs.tmp"));
    err("read bad fd", (int)read(99, b, 1));
    err("waitpid no child", waitpid(-1, &st, 0));
    err("kill no such pid", kill(99999, 0));
    return 5;
}
