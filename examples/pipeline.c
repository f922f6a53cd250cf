/* pipe + dup2 + exec: runs `sort` on data written through a pipe, reads
 * its output back through another pipe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int in[2], out[2];
    if (pipe(in) || pipe(out)) { perror("pipe"); return 1; }
    pid_t c = fork();
    if (c == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execlp("sort", "sort", "-r", (char *)NULL);
        perror("exec sort");
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    const char *data = "pear\napple\nfig\nbanana\n";
    if (write(in[1], data, strlen(data)) != (ssize_t)strlen(data)) { perror("write"); return 1; }
    close(in[1]);
    char buf[256];
    ssize_t n, total = 0;
    while ((n = read(out[0], buf + total, sizeof buf - 1 - total)) > 0) total += n;
    buf[total] = 0;
    int st;
    waitpid(c, &st, 0);
    printf("sort said:\n%s", buf);
    printf("sort exited %d\n", WEXITSTATUS(st));
    return 0;
}
