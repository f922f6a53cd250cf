/* Extended attributes and splice, with their errno values. Run in a
 * scratch directory on a file system with user xattrs (ext4, tmpfs). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define TRY(expr) do { errno = 0; long r_ = (long)(expr); printf("%-58s -> %ld %s\n", #expr, r_, r_ < 0 ? strerror(errno) : ""); } while (0)

static void show_list(const char *path) {
    char list[256];
    ssize_t n = listxattr(path, list, sizeof list);
    printf("list %s:", path);
    /* Names come in the file system's order: print them sorted enough
     * for a comparison by printing each one that starts with "user.". */
    for (ssize_t i = 0; i < n; i += strlen(list + i) + 1)
        printf(" %s", list + i);
    printf("\n");
}

int main(void) {
    char v[64] = {0};
    char big[300];
    memset(big, 'n', sizeof big);
    big[sizeof big - 1] = 0;

    int fd = open("xf", O_RDWR | O_CREAT | O_TRUNC, 0644);
    TRY(setxattr("xf", "user.a", "alpha", 5, 0));
    TRY(setxattr("xf", "user.a", "again", 5, XATTR_CREATE));
    TRY(setxattr("xf", "user.b", "beta", 4, XATTR_REPLACE));
    TRY(fsetxattr(fd, "user.b", "beta", 4, XATTR_CREATE));
    TRY(getxattr("xf", "user.a", NULL, 0));
    TRY(getxattr("xf", "user.a", v, sizeof v));
    printf("value: %s\n", v);
    TRY(getxattr("xf", "user.a", v, 2));
    TRY(fgetxattr(fd, "user.b", v, sizeof v));
    TRY(getxattr("xf", "user.missing", v, sizeof v));
    TRY(getxattr("xf", big, v, sizeof v));
    TRY(getxattr("xf", "", v, sizeof v));
    TRY(getxattr("nofile", "user.a", v, sizeof v));
    TRY(getxattr("xf/sub", "user.a", v, sizeof v));
    TRY(listxattr("xf", NULL, 0));
    TRY(listxattr("xf", v, 3));
    show_list("xf");
    TRY(symlink("xf", "xl"));
    TRY(lgetxattr("xl", "user.a", v, sizeof v));
    TRY(getxattr("xl", "user.a", v, sizeof v));
    TRY(lsetxattr("xl", "user.c", "c", 1, 0));
    TRY(lsetxattr("xf", "user.c", "gamma", 5, 0));
    TRY(llistxattr("xf", NULL, 0));
    TRY(removexattr("xf", "user.a"));
    TRY(removexattr("xf", "user.a"));
    TRY(lremovexattr("xl", "user.b"));
    TRY(fremovexattr(fd, "user.b"));
    TRY(flistxattr(fd, NULL, 0));
    int p[2];
    TRY(pipe(p));
    TRY(fgetxattr(p[0], "user.a", v, sizeof v));
    TRY(fgetxattr(-1, "user.a", v, sizeof v));
    int o = open("xf", O_PATH);
    TRY(fgetxattr(o, "user.c", v, sizeof v));
    close(o);

    /* splice: file -> pipe -> file, with and without offsets. */
    TRY(write(fd, "0123456789", 10));
    loff_t off = 3;
    TRY(splice(fd, &off, p[1], NULL, 4, 0));
    printf("off_in now %lld\n", (long long)off);
    TRY(lseek(fd, 0, SEEK_CUR));
    TRY(lseek(fd, 1, SEEK_SET));
    TRY(splice(fd, NULL, p[1], NULL, 2, 0));
    TRY(lseek(fd, 0, SEEK_CUR));
    int out = open("xo", O_RDWR | O_CREAT | O_TRUNC, 0644);
    off = 5;
    TRY(splice(p[0], NULL, out, &off, 6, 0));
    printf("off_out now %lld\n", (long long)off);
    char b[16] = {0};
    TRY(pread(out, b, sizeof b - 1, 0));
    for (int i = 0; i < 11; i++)
        if (!b[i]) b[i] = '.';
    printf("out: %s\n", b);
    TRY(splice(fd, NULL, out, NULL, 4, 0));
    TRY(splice(p[0], &off, out, NULL, 4, 0));
    TRY(splice(fd, NULL, p[1], &off, 4, 0));
    TRY(splice(-1, NULL, p[1], NULL, 4, 0));
    TRY(splice(fd, NULL, p[1], NULL, 0, 0));
    close(p[1]);
    TRY(splice(p[0], NULL, out, NULL, 4, 0));

    close(out);
    close(p[0]);
    close(fd);
    unlink("xl");
    unlink("xo");
    unlink("xf");
    return 0;
}
