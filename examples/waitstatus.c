/* Wait statuses as Linux encodes them: exit codes, signals, WNOHANG, ECHILD. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, int st) {
    if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("%s: killed by %s\n", what, strsignal(WTERMSIG(st)));
    else printf("%s: other %#x\n", what, st);
}

int main(void) {
    int st;
    pid_t a = fork();
    if (a == 0) _exit(42);
    waitpid(a, &st, 0);
    show("exit 42", st);

    pid_t b = fork();
    if (b == 0) { pause(); _exit(0); }
    printf("WNOHANG while running: %d\n", (int)waitpid(b, &st, WNOHANG));
    kill(b, SIGTERM);
    waitpid(b, &st, 0);
    show("SIGTERM", st);

    pid_t c = fork();
    if (c == 0) { raise(SIGKILL); _exit(1); }
    waitpid(c, &st, 0);
    show("raise SIGKILL", st);

    errno = 0;
    printf("wait with no children: %d %s\n", (int)wait(&st), strerror(errno));
    printf("waitpid of a stranger: %d %s\n", (int)waitpid(99999, &st, 0), strerror(errno));
    return 0;
}
