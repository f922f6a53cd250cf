/* AF_UNIX sockets: socketpair (stream and datagram) across fork, a
 * listener bound to a path with a forked client, an abstract datagram
 * name, SCM_RIGHTS, shutdown/EOF, EPIPE with MSG_NOSIGNAL, non-blocking
 * EAGAIN, poll on a listening socket, stat of the bound path. Prints
 * the same lines natively and in a DC. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(x) do { if ((x) < 0) { printf("FAIL %s: %s\n", #x, strerror(errno)); exit(1); } } while (0)

static void reap(pid_t c, const char *what) {
    int st;
    waitpid(c, &st, 0);
    printf("%s exited %d\n", what, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static void pair_stream(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    pid_t c = fork();
    if (c == 0) {
        close(sv[0]);
        char buf[64];
        for (int i = 0; i < 3; i++) {
            ssize_t n = read(sv[1], buf, sizeof buf);
            buf[n] = 0;
            char out[80];
            snprintf(out, sizeof out, "pong:%s", buf);
            write(sv[1], out, strlen(out));
        }
        _exit(0);
    }
    close(sv[1]);
    char buf[64];
    for (int i = 0; i < 3; i++) {
        char msg[16];
        snprintf(msg, sizeof msg, "ping%d", i);
        send(sv[0], msg, strlen(msg), 0);
        ssize_t n = recv(sv[0], buf, sizeof buf - 1, 0);
        buf[n] = 0;
        printf("stream: %s\n", buf);
    }
    ssize_t n = read(sv[0], buf, sizeof buf);
    printf("stream: after child exit read %zd\n", n);
    close(sv[0]);
    reap(c, "stream child");
}

static void pair_dgram(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    pid_t c = fork();
    if (c == 0) {
        close(sv[0]);
        char buf[64];
        ssize_t a = recv(sv[1], buf, sizeof buf, 0);
        ssize_t b = recv(sv[1], buf, 3, MSG_TRUNC);
        char r[32];
        snprintf(r, sizeof r, "%zd,%zd", a, b);
        send(sv[1], r, strlen(r), 0);
        _exit(0);
    }
    close(sv[1]);
    send(sv[0], "hello", 5, 0);
    send(sv[0], "0123456789", 10, 0);
    char buf[64];
    ssize_t n = recv(sv[0], buf, sizeof buf - 1, 0);
    buf[n] = 0;
    printf("dgram: sizes seen by child %s\n", buf);
    close(sv[0]);
    reap(c, "dgram child");
}

static void listener(void) {
    mkdir("unixsock.d", 0755);
    const char *path = "unixsock.d/srv";
    unlink(path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strcpy(a.sun_path, path);
    mode_t old = umask(022);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof a));
    umask(old);
    struct stat st;
    CHECK(stat(path, &st));
    printf("bound: socket=%d mode=%o\n", S_ISSOCK(st.st_mode), st.st_mode & 0777);
    int again = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("bind again: %s\n", bind(again, (struct sockaddr *)&a, sizeof a) < 0 ? strerror(errno) : "ok");
    close(again);
    CHECK(listen(l, 4));
    int on = 0;
    socklen_t ol = sizeof on;
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol);
    printf("acceptconn %d\n", on);
    struct pollfd p = {.fd = l, .events = POLLIN};
    printf("poll before connect: %d\n", poll(&p, 1, 0));
    pid_t c = fork();
    if (c == 0) {
        close(l);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(s, (struct sockaddr *)&a, sizeof a));
        const char *m = "request";
        write(s, m, strlen(m));
        shutdown(s, SHUT_WR);
        char buf[64];
        ssize_t n, t = 0;
        while ((n = read(s, buf + t, sizeof buf - 1 - t)) > 0) t += n;
        buf[t] = 0;
        printf("client got: %s\n", buf);
        fflush(stdout);
        _exit(0);
    }
    int ready = poll(&p, 1, 5000);
    printf("poll with connection: %d revents=%d\n", ready, p.revents);
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    int s = accept4(l, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
    CHECK(s);
    printf("accepted: peer len %d\n", (int)pl);
    struct sockaddr_un me;
    socklen_t ml = sizeof me;
    getsockname(s, (struct sockaddr *)&me, &ml);
    printf("accepted: local name %s\n", me.sun_path);
    struct ucred cr;
    socklen_t cl = sizeof cr;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    printf("peercred pid is child: %d\n", cr.pid == c);
    char buf[64];
    ssize_t n, t = 0;
    while ((n = read(s, buf + t, sizeof buf - 1 - t)) > 0) t += n;
    buf[t] = 0;
    printf("server got: %s (then EOF)\n", buf);
    write(s, "response", 8);
    close(s);
    reap(c, "client");
    close(l);
    /* A stale node: nobody listens. */
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("connect stale: %s\n", connect(s2, (struct sockaddr *)&a, sizeof a) < 0 ? strerror(errno) : "ok");
    close(s2);
    unlink(path);
    rmdir("unixsock.d");
}

static void abstract_dgram(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int len = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "dvs-unixsock-%d", (int)getpid());
    socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1 + len;
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    CHECK(bind(r, (struct sockaddr *)&a, al));
    pid_t c = fork();
    if (c == 0) {
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un me = {.sun_family = AF_UNIX};
        CHECK(bind(s, (struct sockaddr *)&me, sizeof(sa_family_t)));
        sendto(s, "datagram", 8, 0, (struct sockaddr *)&a, al);
        _exit(0);
    }
    char buf[64];
    struct sockaddr_un from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(r, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
    buf[n] = 0;
    printf("abstract: got %s from autobound name (len %d, abstract %d)\n", buf, (int)fl, from.sun_path[0] == 0);
    reap(c, "abstract child");
    close(r);
}

static void rights(void) {
    int sv[2], p[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    CHECK(pipe(p));
    pid_t c = fork();
    if (c == 0) {
        close(sv[0]);
        close(p[0]);
        close(p[1]);
        char b;
        char ctl[CMSG_SPACE(sizeof(int))];
        struct iovec io = {.iov_base = &b, .iov_len = 1};
        struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
        ssize_t n = recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        if (n != 1 || !cm || cm->cmsg_type != SCM_RIGHTS) { printf("no rights\n"); _exit(1); }
        int fd;
        memcpy(&fd, CMSG_DATA(cm), sizeof fd);
        printf("rights: child got a descriptor, cloexec=%d\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        fflush(stdout);
        write(fd, "through passed fd", 17);
        _exit(0);
    }
    close(sv[1]);
    char b = 'x';
    char ctl[CMSG_SPACE(sizeof(int))];
    memset(ctl, 0, sizeof ctl);
    struct iovec io = {.iov_base = &b, .iov_len = 1};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[1], sizeof(int));
    CHECK(sendmsg(sv[0], &m, 0));
    close(p[1]);
    reap(c, "rights child");
    char buf[64];
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    buf[n < 0 ? 0 : n] = 0;
    printf("rights: parent read '%s'\n", buf);
    close(p[0]);
    close(sv[0]);
}

static void errors(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    char b;
    printf("nonblock recv: %s\n", recv(sv[0], &b, 1, 0) < 0 ? strerror(errno) : "data");
    int fl = fcntl(sv[1], F_GETFL);
    printf("getfl nonblock %d rdwr %d\n", (fl & O_NONBLOCK) != 0, (fl & O_ACCMODE) == O_RDWR);
    send(sv[1], "abc", 3, 0);
    int avail = 0;
    ioctl(sv[0], FIONREAD, &avail);
    printf("fionread %d\n", avail);
    char peek[4] = {0};
    recv(sv[0], peek, 3, MSG_PEEK);
    printf("peek %s, then read %zd\n", peek, recv(sv[0], peek, 3, 0));
    struct stat st;
    fstat(sv[0], &st);
    printf("fstat socket %d\n", S_ISSOCK(st.st_mode));
    shutdown(sv[1], SHUT_WR);
    printf("after peer SHUT_WR recv %zd\n", recv(sv[0], &b, 1, 0));
    close(sv[1]);
    struct pollfd p = {.fd = sv[0], .events = POLLIN | POLLOUT | POLLRDHUP};
    poll(&p, 1, 0);
    printf("poll after close: in=%d hup=%d rdhup=%d\n", !!(p.revents & POLLIN), !!(p.revents & POLLHUP), !!(p.revents & POLLRDHUP));
    printf("send MSG_NOSIGNAL: %s\n", send(sv[0], "x", 1, MSG_NOSIGNAL) < 0 ? strerror(errno) : "ok");
    signal(SIGPIPE, SIG_IGN);
    printf("write ignored SIGPIPE: %s\n", write(sv[0], "x", 1) < 0 ? strerror(errno) : "ok");
    close(sv[0]);
    int t;
    socklen_t tl = sizeof t;
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    getsockopt(s, SOL_SOCKET, SO_TYPE, &t, &tl);
    printf("seqpacket type %d, bogus option: %s\n", t == SOCK_SEQPACKET,
           getsockopt(s, SOL_SOCKET, 12345, &t, &tl) < 0 ? strerror(errno) : "ok");
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pair_stream();
    pair_dgram();
    listener();
    abstract_dgram();
    rights();
    errors();
    return 0;
}
