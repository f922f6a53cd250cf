/* Wide-character standard I/O, as util-linux's rev, col and column use
 * it: fwprintf, fputws and fputwc to a file, fgetwc, ungetwc, fgetws and
 * getwc from it, fwide, and wprintf, fputws, putwchar, fgetws and
 * getwchar on the standard streams. Everything this program prints is
 * wide, so stdout is wide-oriented from its first call. */
#include <locale.h>
#include <stdio.h>
#include <unistd.h>
#include <wchar.h>

int main(void) {
    if (!setlocale(LC_ALL, "C.UTF-8"))
        return 2;
    FILE *f = fopen("wide.txt", "w");
    int fresh = fwide(f, 0);
    fwprintf(f, L"%ls %d\n", L"h\u00e9llo w\u00f6rld", 42);
    int wide = fwide(f, 0);
    fputws(L"zweite Zeile \u2713\n", f);
    fputwc(L'\u20ac', f);
    fputwc(L'\n', f);
    fclose(f);

    f = fopen("wide.txt", "r");
    wint_t first = fgetwc(f);
    wint_t second = fgetwc(f);
    wint_t back = ungetwc(second, f);
    wchar_t line[64] = L"(nothing)\n";
    if (!fgetws(line, 64, f))
        return 3;
    wchar_t rest[64];
    size_t n = 0;
    wint_t w;
    while (n < 63 && (w = getwc(f)) != WEOF)
        rest[n++] = w;
    rest[n] = 0;
    int eof = feof(f) != 0;
    fclose(f);
    unlink("wide.txt");

    wprintf(L"orientation: new %d, after fwprintf %d\n", fresh, wide);
    wprintf(L"first %lc, second %lc, pushed back %d\n", (wint_t)first, (wint_t)second,
            back == second);
    wprintf(L"line: %ls", line);
    wprintf(L"rest (%zu wide characters): %ls", n, rest);
    wprintf(L"end of file: %d\n", eof);
    wchar_t in[64];
    if (fgetws(in, 64, stdin))
        wprintf(L"stdin: %ls", in);
    w = getwchar();
    wprintf(L"then: %d\n", w == WEOF ? -1 : (int)w);
    putwchar(L'\u03a9');
    putwchar(L'\n');
    fputws(L"fputws to stdout\n", stdout);
    int r = wprintf(L"%5.2f|%-4ls|%#x|%s\n", 3.14159, L"ab", 255, "narrow");
    wprintf(L"wprintf returned %d, stdout is wide: %d\n", r, fwide(stdout, 0));
    return 0;
}
