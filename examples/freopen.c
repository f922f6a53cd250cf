/* freopen on the standard streams and on an fopen'd stream: the stream
 * keeps its descriptor number, later output goes to the new file, input
 * comes from it, and a stream reopened on /dev/null swallows output. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    FILE *out = fdopen(dup(1), "w");
    char line[64] = "";
    FILE *f = freopen("freopen.out", "w", stdout);
    printf("to the file\n");
    fflush(stdout);
    int same = f == stdout && fileno(stdout) == 1;
    FILE *g = freopen("freopen.out", "r", stdin);
    if (!fgets(line, sizeof line, stdin))
        strcpy(line, "(nothing)\n");
    freopen("/dev/null", "w", stderr);
    fprintf(stderr, "swallowed\n");
    FILE *h = fopen("freopen.two", "w");
    fputs("first\n", h);
    FILE *h2 = freopen("freopen.two", "a", h);
    fputs("second\n", h2);
    fclose(h2);
    FILE *r = fopen("freopen.two", "r");
    char two[64] = "";
    size_t n = fread(two, 1, sizeof two - 1, r);
    fclose(r);
    fprintf(out, "stdout kept its stream and fd 1: %d\n", same);
    fprintf(out, "stdin reopened: %d, read back: %s", g == stdin && fileno(stdin) == 0, line);
    fprintf(out, "reopened for append: %zu bytes: %.*s", n, (int)n, two);
    fprintf(out, "freopen of a missing file: %s\n",
            freopen("no/such/dir/x", "r", stdin) ? "opened?" : "NULL");
    fclose(out);
    unlink("freopen.out");
    unlink("freopen.two");
    return 0;
}
