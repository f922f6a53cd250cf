/*
 * spin.c: a fixed amount of pure computation, with no system call in the
 * timed part, for bench/run.sh. Built static, it shows what the tracer
 * costs a program that makes no redirected calls (its seccomp filter and
 * ptrace attachment only; start-up is measured separately).
 *
 * usage: spin [N]   (N iterations, default 200000000)
 * output: spin_ms=<elapsed ms of the loop>
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000000ULL;
    uint64_t x = 88172645463325252ULL;
    double t0 = now_ms();
    for (uint64_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    double t1 = now_ms();
    /* Print x so that the loop cannot be optimised away. */
    printf("spin_ms=%.2f\nx=%llu\n", t1 - t0, (unsigned long long)x);
    return 0;
}
