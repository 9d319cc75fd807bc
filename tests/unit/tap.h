/*
 * tap.h - the Test Anything Protocol for C unit tests, as automake's
 * tap-driver.sh reads it.  Header-only; one test program per module.
 *
 *   ok(cond, "name %d", i);  is_int(got, want, "name");  is_str(...);
 *   return tap_done();       -- prints the plan, exit status 0 / 1
 */
#ifndef POSTERN_TAP_H
#define POSTERN_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int
tap_ok(int cond, const char *fmt, ...)
{
    va_list ap;

    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)

#define is_int(got, want, ...) do { \
    long long g_ = (long long)(got), w_ = (long long)(want); \
    if (!tap_ok(g_ == w_, __VA_ARGS__)) { \
        printf("#   got %lld, want %lld (%s:%d)\n", g_, w_, __FILE__, __LINE__); \
    } \
} while (0)

#define is_str(got, want, ...) do { \
    const char *g_ = (got), *w_ = (want); \
    int eq_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_; \
    if (!tap_ok(eq_, __VA_ARGS__)) { \
        printf("#   got \"%s\", want \"%s\" (%s:%d)\n", g_ ? g_ : "(null)", \
               w_ ? w_ : "(null)", __FILE__, __LINE__); \
    } \
} while (0)

static inline int
tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
