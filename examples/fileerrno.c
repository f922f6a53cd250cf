/* File semantics and errno values. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TRY(expr) do { errno = 0; long r_ = (long)(expr); printf("%-44s -> %ld %s\n", #expr, r_, r_ < 0 ? strerror(errno) : ""); } while (0)

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
    if (chdir(argv[1])) { perror("chdir"); return 1; }
    TRY(open("missing", O_RDONLY));
    TRY(open("f", O_WRONLY | O_CREAT | O_EXCL, 0644));
    TRY(open("f", O_WRONLY | O_CREAT | O_EXCL, 0644));
    int fd = open("f", O_RDWR);
    TRY(write(fd, "hello world", 11));
    TRY(lseek(fd, 6, SEEK_SET));
    char b[32] = {0};
    TRY(read(fd, b, sizeof b));
    printf("read back: %s\n", b);
    int fd2 = dup(fd);
    TRY(lseek(fd2, 0, SEEK_CUR));
    TRY(fcntl(fd, F_GETFD));
    TRY(fcntl(fd, F_SETFD, FD_CLOEXEC));
    TRY(fcntl(fd, F_GETFD));
    TRY(fcntl(fd2, F_GETFD));
    close(fd); close(fd2);
    TRY(mkdir("d", 0755));
    TRY(mkdir("d", 0755));
    TRY(rmdir("f"));
    TRY(unlink("d"));
    TRY(open("d", O_WRONLY));
    TRY(open("f/x", O_RDONLY));
    TRY(rename("f", "d/g"));
    struct stat st;
    TRY(stat("d/g", &st));
    printf("size %lld\n", (long long)st.st_size);
    TRY(symlink("d/g", "ln"));
    char l[64] = {0};
    TRY(readlink("ln", l, sizeof l));
    printf("link -> %s\n", l);
    TRY(unlink("ln"));
    TRY(unlink("d/g"));
    TRY(rmdir("d"));
    TRY(close(12345));
    TRY(read(-1, b, 1));
    return 0;
}
