/*
 * test_process.c - process_tune_malloc(): a thread that frees a session's
 * worth of buffers gets the same pages back for the next session instead
 * of faulting them in again, and an administrator's GLIBC_TUNABLES wins.
 *
 * Page faults are counted with getrusage(RUSAGE_THREAD) in a fresh thread
 * (its own heap, as a worker has).  The sanitizers bring their own
 * allocators, which mallopt() does not steer: those builds skip.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "process.h"
#include "tap.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OTHER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define OTHER_ALLOCATOR 1
#endif
#endif

#define BLOCK  (64 * 1024)  /* a proxy_buffer as bench/ sets it */
#define BLOCKS 4            /* one session: 256 KiB, over glibc's 128 KiB */
#define ROUNDS 32

#ifndef OTHER_ALLOCATOR
/* Minor faults of `ROUNDS` sessions after a first one, in this thread. */
static void *
sessions(void *arg)
{
    long *faults = arg;
    struct rusage before, after;
    int r, i;

    for (r = 0; r <= ROUNDS; r++) {
        char *b[BLOCKS];

        if (r == 1) {
            getrusage(RUSAGE_THREAD, &before);
        }
        for (i = 0; i < BLOCKS; i++) {
            if ((b[i] = malloc(BLOCK)) == NULL) {
                abort();
            }
            memset(b[i], r, BLOCK);     /* every page used, as a relay does */
        }
        for (i = BLOCKS - 1; i >= 0; i--) {
            free(b[i]);
        }
    }
    getrusage(RUSAGE_THREAD, &after);
    *faults = after.ru_minflt - before.ru_minflt;
    return NULL;
}

static long
faults_in_thread(void)
{
    pthread_t t;
    long faults = -1;

    if (pthread_create(&t, NULL, sessions, &faults) != 0) {
        return -1;
    }
    pthread_join(t, NULL);
    return faults;
}
#endif

int
main(void)
{
#ifdef OTHER_ALLOCATOR
    printf("1..0 # SKIP a sanitizer's allocator ignores mallopt()\n");
    return 0;
#else
    long untuned, tuned;
    const long per_round = BLOCKS * BLOCK / 4096;

    unsetenv("GLIBC_TUNABLES");
    untuned = faults_in_thread();
    /* what the tuning is for; glibc versions may differ, so only told */
    printf("# untuned: %ld page faults in %d sessions (%ld pages each)\n",
           untuned, ROUNDS, per_round);

#ifndef __GLIBC__
    if (!process_tune_malloc()) {
        printf("1..0 # SKIP no mallopt() thresholds in this C library\n");
        return 0;
    }
#else
    if (!ok(process_tune_malloc() == 1,
            "thresholds set when GLIBC_TUNABLES names no malloc setting")) {
        return tap_done();
    }
#endif
    tuned = faults_in_thread();
    ok(tuned >= 0 && tuned < per_round,
       "freed buffers kept: %ld page faults in %d sessions (untuned %ld)",
       tuned, ROUNDS, untuned);

    setenv("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=131072", 1);
    is_int(process_tune_malloc(), 0, "GLIBC_TUNABLES with malloc settings wins");
    setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
    is_int(process_tune_malloc(), 1, "other GLIBC_TUNABLES do not stop it");
    return tap_done();
#endif
}
