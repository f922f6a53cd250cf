/* A signal handler that leaves a blocking call with siglongjmp, as shells
 * do to end their `wait` builtin when a trapped signal comes: the call is
 * abandoned, and the calls after the jump work as before. The signal comes
 * from another process of the DC (through PM) into a waitpid and a read on
 * an empty pipe, and from a host timer into a waitpid. The second waitpid
 * still gets the child's status; the pipe still carries data. Prints the
 * same natively and in a DC. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf jb;

static void jump(int sig)
{
    (void)sig;
    siglongjmp(jb, 1);
}

/* A child that signals its parent after 100 ms and ends with `code`
 * 100 ms later. */
static pid_t signaller(pid_t parent, int code)
{
    pid_t k = fork();
    if (k == 0) {
        usleep(100000);
        kill(parent, SIGUSR1);
        usleep(100000);
        _exit(code);
    }
    return k;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = jump;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    pid_t me = getpid();
    int st;

    pid_t k = signaller(me, 3);
    if (sigsetjmp(jb, 1) == 0) {
        waitpid(k, &st, 0);
        printf("waitpid was not interrupted\n");
    } else {
        printf("left waitpid\n");
    }
    pid_t r = waitpid(k, &st, 0);
    printf("then waitpid: %s, status %d\n", r == k ? "the child" : strerror(errno),
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    int p[2];
    if (pipe(p) != 0)
        return 1;
    k = signaller(me, 4);
    if (sigsetjmp(jb, 1) == 0) {
        char c;
        read(p[0], &c, 1);
        printf("read was not interrupted\n");
    } else {
        printf("left read\n");
    }
    char c = 0;
    if (write(p[1], "x", 1) == 1 && read(p[0], &c, 1) == 1)
        printf("then the pipe carries '%c'\n", c);
    waitpid(k, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));

    k = fork();
    if (k == 0) {
        usleep(300000);
        _exit(5);
    }
    struct itimerval t = {.it_value = {.tv_usec = 100000}};
    setitimer(ITIMER_REAL, &t, NULL);
    if (sigsetjmp(jb, 1) == 0) {
        waitpid(k, &st, 0);
        printf("waitpid was not interrupted\n");
    } else {
        printf("the timer left waitpid\n");
    }
    r = waitpid(k, &st, 0);
    printf("then waitpid: %s, status %d\n", r == k ? "the child" : strerror(errno),
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
