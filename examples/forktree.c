/* A fork tree: every process prints its depth and its parent's PID
 * relation, children exit with distinct codes, parents collect them in
 * order. Output is identical natively and inside a DC. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int tree(int depth) {
    if (depth == 0)
        return 1;
    int total = 1;
    for (int i = 0; i < 2; i++) {
        pid_t me = getpid();
        pid_t c = fork();
        if (c < 0) { perror("fork"); exit(99); }
        if (c == 0) {
            if (getppid() != me) { printf("bad parent at depth %d\n", depth); exit(98); }
            int n = tree(depth - 1);
            exit(n);
        }
        int st;
        if (waitpid(c, &st, 0) != c) { perror("waitpid"); exit(97); }
        if (!WIFEXITED(st)) { printf("child did not exit\n"); exit(96); }
        total += WEXITSTATUS(st);
    }
    return total;
}

int main(void) {
    int n = tree(3);
    printf("processes in the tree: %d\n", n);
    /* wait with no children left */
    if (wait(NULL) == -1)
        perror("wait");
    return n == 15 ? 0 : 1;
}
