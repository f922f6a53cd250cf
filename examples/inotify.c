/* inotify: watch a directory and a file, as `tail -f` and build tools do.
 * Creating, writing, renaming and deleting files in the watched directory
 * give events with their names; a blocking read waits for the next
 * event; removing a watch gives IN_IGNORED; errors for a missing path
 * and a descriptor that is not an inotify instance. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind(unsigned m) {
    if (m & IN_CREATE) return "create";
    if (m & IN_MODIFY) return "modify";
    if (m & IN_CLOSE_WRITE) return "close_write";
    if (m & IN_MOVED_FROM) return "moved_from";
    if (m & IN_MOVED_TO) return "moved_to";
    if (m & IN_DELETE) return "delete";
    if (m & IN_IGNORED) return "ignored";
    return "other";
}

/* Prints the events waiting (blocking until there is at least one). */
static void drain(int fd, int dir_wd) {
    char buf[4096] __attribute__((aligned(8)));
    ssize_t n = read(fd, buf, sizeof buf);
    for (char *p = buf; n > 0 && p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        printf("  %s %s %s\n", e->wd == dir_wd ? "dir" : "file", kind(e->mask),
               e->len ? e->name : "-");
        p += sizeof *e + e->len;
    }
}

int main(void) {
    mkdir("watched", 0755);
    int fd = inotify_init1(IN_CLOEXEC);
    int wd = inotify_add_watch(fd, "watched", IN_CREATE | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE);
    printf("watch: %d\n", wd > 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    printf("nothing yet: %d\n", poll(&p, 1, 0));
    int f = open("watched/a", O_CREAT | O_WRONLY, 0644);
    if (write(f, "x", 1) != 1)
        return 1;
    close(f);
    printf("ready: %d\n", poll(&p, 1, 2000));
    drain(fd, wd);
    int fw = inotify_add_watch(fd, "watched/a", IN_MODIFY);
    f = open("watched/a", O_WRONLY | O_APPEND);
    if (write(f, "y", 1) != 1)
        return 1;
    close(f);
    drain(fd, wd);
    rename("watched/a", "watched/b");
    drain(fd, wd);
    unlink("watched/b");
    drain(fd, wd);
    printf("rm_watch: %d\n", inotify_rm_watch(fd, wd));
    drain(fd, wd);
    int r = inotify_add_watch(fd, "missing/x", IN_CREATE);
    printf("missing: %d errno %d\n", r, errno);
    r = inotify_add_watch(1, "watched", IN_CREATE);
    printf("not inotify: %d errno %d\n", r, errno);
    (void)fw;
    rmdir("watched");
    return 0;
}
