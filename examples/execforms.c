/* Every exec form of the C library, each from a fork (and one from a
 * vfork): the list forms execl/execle/execlp (with more arguments than
 * registers), the array forms execv/execvp/execve/execvpe and fexecve.
 * Each child prints its arguments (and one variable); the parent prints
 * the child's status, and that a missing program gives ENOENT. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SHOW "echo \"$0 [$*] X=${X:-unset}\"; exit $#"

static void report(const char *form, pid_t c) {
    int st;
    if (waitpid(c, &st, 0) != c) {
        perror("waitpid");
        exit(1);
    }
    printf("%s: exited %d\n", form, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    fflush(stdout);
}

int main(void) {
    char *argv[] = {"sh", "-c", SHOW, "array", "a", "b", NULL};
    char *envp[] = {"X=from-envp", "PATH=/usr/bin:/bin", NULL};
    pid_t c;

    setvbuf(stdout, NULL, _IONBF, 0);
    setenv("X", "from-environ", 1);

    if ((c = fork()) == 0) {
        execl("/bin/sh", "sh", "-c", SHOW, "execl", "1", "2", "3", "4", "5", "6", "7", "8", (char *)0);
        _exit(127);
    }
    report("execl", c);

    if ((c = fork()) == 0) {
        execle("/bin/sh", "sh", "-c", SHOW, "execle", "1", "2", "3", "4", "5", "6", (char *)0, envp);
        _exit(127);
    }
    report("execle", c);

    if ((c = fork()) == 0) {
        execlp("sh", "sh", "-c", SHOW, "execlp", "1", (char *)0);
        _exit(127);
    }
    report("execlp", c);

    if ((c = fork()) == 0) {
        execv("/bin/sh", argv);
        _exit(127);
    }
    report("execv", c);

    if ((c = fork()) == 0) {
        execvp("sh", argv);
        _exit(127);
    }
    report("execvp", c);

    if ((c = fork()) == 0) {
        execve("/bin/sh", argv, envp);
        _exit(127);
    }
    report("execve", c);

    if ((c = fork()) == 0) {
        execvpe("sh", argv, envp);
        _exit(127);
    }
    report("execvpe", c);

    if ((c = fork()) == 0) {
        int fd = open("/bin/sh", O_RDONLY | O_CLOEXEC);
        fexecve(fd, argv, environ);
        _exit(127);
    }
    report("fexecve", c);

    if ((c = vfork()) == 0) {
        execl("/bin/sh", "sh", "-c", SHOW, "vfork+execl", "v", (char *)0);
        _exit(127);
    }
    report("vfork+execl", c);

    if ((c = fork()) == 0) {
        execl("/nonexistent/prog", "prog", (char *)0);
        printf("execl of a missing program: %s\n", strerror(errno));
        _exit(errno == ENOENT ? 0 : 1);
    }
    report("missing", c);
    return 0;
}
