/*
 * forkpty(3) and login_tty(3): the child runs in a new session on the
 * terminal side of a new pseudo-terminal (its standard descriptors), its
 * output reaches the master side, and its exit status reaches waitpid.
 * glibc's forkpty forks with an internal fork that a preload cannot see.
 */
#include <errno.h>
#include <pty.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    if (pid < 0) {
        printf("forkpty: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        printf("child: stdin a tty %d, session leader %d\n", isatty(0), getsid(0) == getpid());
        fflush(stdout);
        _exit(7);
    }
    char buf[256];
    size_t len = 0;
    ssize_t n;
    /* Until the terminal side is closed (EIO on Linux). */
    while (len < sizeof buf && (n = read(master, buf + len, sizeof buf - len)) > 0)
        len += (size_t)n;
    for (size_t i = 0; i < len; i++)
        if (buf[i] != '\r')
            putchar(buf[i]);
    int st;
    if (waitpid(pid, &st, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    printf("child exited %d with status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    return 0;
}
