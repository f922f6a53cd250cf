/* Process-group kill: a child makes its own group with two members and
 * the parent kills the whole group at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int ready[2];
    if (pipe(ready)) { perror("pipe"); return 1; }
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        pid_t member = fork();
        if (member == 0) { write(ready[1], "m", 1); pause(); _exit(0); }
        write(ready[1], "l", 1);
        int st;
        waitpid(member, &st, 0);
        _exit(WIFSIGNALED(st) ? 100 + WTERMSIG(st) : 1);
    }
    char c;
    read(ready[0], &c, 1);
    read(ready[0], &c, 1);
    setpgid(leader, leader); /* may race with the child's own call: both are fine */
    printf("group == leader: %d\n", getpgid(leader) == leader);
    if (kill(-leader, SIGTERM)) { perror("kill"); return 1; }
    int st;
    waitpid(leader, &st, 0);
    printf("leader: %s %d\n", WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    printf("kill of a missing group: %d\n", kill(-99999, SIGTERM));
    return 0;
}
