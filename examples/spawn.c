/* The ways glibc starts programs besides fork+exec: system(), popen()
 * and posix_spawn() with file actions. Every child must see this process
 * as its parent. */
#include <errno.h>
#include <spawn.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(void) {
    char cmd[128], buf[128];
    snprintf(cmd, sizeof cmd, "test $PPID = %d && echo system: parent ok; exit 3", (int)getpid());
    int st = system(cmd);
    printf("system status %d\n", WEXITSTATUS(st));

    snprintf(cmd, sizeof cmd, "test $PPID = %d && echo popen: parent ok; echo line2", (int)getpid());
    FILE *f = popen(cmd, "r");
    while (fgets(buf, sizeof buf, f))
        printf("popen read: %s", buf);
    printf("pclose status %d\n", WEXITSTATUS(pclose(f)));

    int p[2];
    if (pipe(p)) { perror("pipe"); return 1; }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    snprintf(cmd, sizeof cmd, "test $PPID = %d && echo spawn: parent ok", (int)getpid());
    char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t c;
    int r = posix_spawnp(&c, "sh", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    waitpid(c, &st, 0);
    printf("posix_spawnp returned %d, child said: %s", r, buf);
    printf("child status %d\n", WEXITSTATUS(st));

    /* A program that is not there: posix_spawn reports it (glibc's child
     * shares its parent's memory until it execs), and no child is left. */
    char *missing[] = {"nonexistent", NULL};
    r = posix_spawn(&c, "/nonexistent/prog", NULL, NULL, missing, environ);
    printf("posix_spawn of a missing program: %s\n", strerror(r));
    printf("children left: %s\n", waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD ? "none" : "some");

    /* Many in a row. */
    int ok = 0;
    for (int i = 0; i < 30; i++) {
        char *t[] = {"true", NULL};
        if (posix_spawn(&c, "/bin/true", NULL, NULL, t, environ) == 0 && waitpid(c, &st, 0) == c &&
            WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
    }
    printf("30 posix_spawn+wait: %d ok\n", ok);
    ok = 0;
    for (int i = 0; i < 10; i++)
        ok += system("exit 0") == 0;
    printf("10 system: %d ok\n", ok);
    return 0;
}
