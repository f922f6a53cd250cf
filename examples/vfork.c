/* vfork children that do what programs do between vfork and exec: exec
 * at once (a shell), juggle descriptors first (Python's subprocess), fail
 * to exec and report it, _exit without exec'ing, ask for their own pid,
 * change a signal disposition; and a vfork from a second thread. Every
 * line must read the same natively and in a DC. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *what, pid_t c) {
    int st;
    if (c < 0) {
        printf("%s: vfork failed: %s\n", what, strerror(errno));
        return;
    }
    if (waitpid(c, &st, 0) != c) {
        printf("%s: waitpid: %s\n", what, strerror(errno));
        return;
    }
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else
        printf("%s: killed by %d\n", what, WTERMSIG(st));
}

static void *from_thread(void *arg) {
    (void)arg;
    pid_t c = vfork();
    if (c == 0) {
        execl("/bin/sh", "sh", "-c", "exit 4", (char *)0);
        _exit(127);
    }
    report("vfork in a thread", c);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t c;

    /* A shell's command: exec at once. */
    if ((c = vfork()) == 0) {
        execl("/bin/echo", "echo", "hello from an exec'd vfork child", (char *)0);
        _exit(127);
    }
    report("exec", c);

    /* Output through a pipe the child sets up itself (dup2, close). */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    if ((c = vfork()) == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/bin/sh", "sh", "-c", "echo through the pipe; exit 3", (char *)0);
        _exit(127);
    }
    close(p[1]);
    char buf[128];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    close(p[0]);
    printf("parent read: %s", buf);
    report("dup2 then exec", c);

    /* An exec that fails: the child reports and leaves. */
    if ((c = vfork()) == 0) {
        execl("/nonexistent/prog", "prog", (char *)0);
        int e = errno;
        char msg[96];
        int len = snprintf(msg, sizeof msg, "child: exec failed: %s\n", strerror(e));
        write(1, msg, len);
        _exit(e == ENOENT ? 127 : 126);
    }
    report("failed exec", c);

    /* Leaving without any other call. */
    if ((c = vfork()) == 0)
        _exit(9);
    report("_exit", c);

    /* The child's own pid and parent are what the parent sees. */
    pid_t ids[2] = {0, 0};
    if (pipe(p) != 0)
        return 1;
    if ((c = vfork()) == 0) {
        pid_t mine[2] = {getpid(), getppid()};
        write(p[1], mine, sizeof mine);
        _exit(0);
    }
    close(p[1]);
    if (read(p[0], ids, sizeof ids) != sizeof ids)
        printf("getpid: short read\n");
    close(p[0]);
    printf("child's getpid is vfork's result: %s, its getppid ours: %s\n",
           ids[0] == c ? "yes" : "no", ids[1] == getpid() ? "yes" : "no");
    report("getpid", c);

    /* A signal disposition changed in the child is the child's own. */
    signal(SIGUSR1, SIG_IGN);
    if ((c = vfork()) == 0) {
        signal(SIGUSR1, SIG_DFL);
        execl("/bin/sh", "sh", "-c", "kill -USR1 $$; exit 0", (char *)0);
        _exit(127);
    }
    report("signal reset", c);
    struct sigaction sa;
    sigaction(SIGUSR1, NULL, &sa);
    printf("parent's SIGUSR1 still ignored: %s\n", sa.sa_handler == SIG_IGN ? "yes" : "no");

    pthread_t t;
    pthread_create(&t, NULL, from_thread, NULL);
    pthread_join(t, NULL);

    /* Many in a row (a shell loop). */
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        if ((c = vfork()) == 0) {
            execl("/bin/true", "true", (char *)0);
            _exit(127);
        }
        int st;
        if (waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
    }
    printf("50 vfork+exec: %d ok\n", ok);
    return 0;
}
