/* tcpbulk: bulk TCP throughput over loopback.
 *
 *   tcpbulk [MIB]            both ends: fork a sender (default 512 MiB)
 *   tcpbulk -l [MIB]         receiver only: prints its port, then the rate
 *   tcpbulk -c PORT [MIB]    sender only, to 127.0.0.1:PORT
 *
 * The receiver listens on an ephemeral loopback port; the sender connects
 * and writes MIB MiB in 128 KiB writes; the receiver reads until EOF and
 * prints "tcpbulk_mib_s <MiB per second>" (from accept to EOF).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (128 * 1024)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static char buf[CHUNK];

/* Connects to `a` and writes `mib` MiB. */
static int sender(struct sockaddr_in *a, long mib) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)a, sizeof *a)) {
        perror("tcpbulk: connect");
        return 1;
    }
    memset(buf, 'x', sizeof buf);
    long left = mib * 1024 * 1024;
    while (left > 0) {
        ssize_t n = write(c, buf, left < CHUNK ? left : CHUNK);
        if (n <= 0) {
            perror("tcpbulk: write");
            return 1;
        }
        left -= n;
    }
    close(c);
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: tcpbulk [MIB] | -l [MIB] | -c PORT [MIB]\n");
    return 2;
}

int main(int argc, char **argv) {
    int listen_only = argc > 1 && !strcmp(argv[1], "-l");
    if (argc > 2 && !strcmp(argv[1], "-c")) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(atoi(argv[2])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        long mib = argc > 3 ? atol(argv[3]) : 512;
        return mib > 0 ? sender(&a, mib) : usage();
    }
    char *m = listen_only ? (argc > 2 ? argv[2] : NULL) : (argc > 1 ? argv[1] : NULL);
    long mib = m ? atol(m) : 512;
    if (mib <= 0)
        return usage();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
        getsockname(l, (struct sockaddr *)&a, &al)) {
        perror("tcpbulk: listen");
        return 1;
    }
    pid_t pid = 0;
    if (listen_only) {
        printf("%d\n", ntohs(a.sin_port));
        fflush(stdout);
    } else if ((pid = fork()) < 0) {
        perror("tcpbulk: fork");
        return 1;
    } else if (pid == 0) {
        _exit(sender(&a, mib));
    }
    int s = accept(l, NULL, NULL);
    if (s < 0) {
        perror("tcpbulk: accept");
        return 1;
    }
    double t0 = now();
    long total = 0;
    ssize_t n;
    while ((n = read(s, buf, sizeof buf)) > 0)
        total += n;
    double dt = now() - t0;
    int st = 0;
    if (pid > 0)
        waitpid(pid, &st, 0);
    if (n < 0 || total != mib * 1024 * 1024 || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "tcpbulk: transfer failed (%ld bytes)\n", total);
        return 1;
    }
    printf("tcpbulk_mib_s %.1f\n", total / 1048576.0 / dt);
    return 0;
}
