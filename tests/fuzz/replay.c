/*
 * replay.c - runs a libFuzzer target over its seed corpus, so that
 * `make check` replays every corpus without libFuzzer.  The corpus is
 * $POSTERN_SRCDIR/tests/fuzz/corpus/FUZZ_NAME/ (or the files named on the
 * command line).  Prints TAP, one line per input: a crash or a sanitizer
 * report fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_NAME
#error "build with -DFUZZ_NAME=\"target\""
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

/* Feed one file to the target. */
static void
replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long len;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        printf("not ok %d - %s: unreadable\n", ++n, path);
        if (f != NULL) {
            fclose(f);
        }
        return;
    }
    data = malloc((size_t)len + 1);
    if (data == NULL || fread(data, 1, (size_t)len, f) != (size_t)len) {
        printf("not ok %d - %s: read failed\n", ++n, path);
    } else {
        LLVMFuzzerTestOneInput(data, (size_t)len);
        printf("ok %d - %s\n", ++n, path);
    }
    fflush(stdout);
    free(data);
    fclose(f);
}

int
main(int argc, char **argv)
{
    const char *src = getenv("POSTERN_SRCDIR");
    char dir[4096], path[8192];
    struct dirent **names;
    int count;

    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            replay_file(argv[i]);
        }
        printf("1..%d\n", n);
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", src ? src : ".", FUZZ_NAME);
    count = scandir(dir, &names, NULL, alphasort);
    if (count < 0) {
        printf("not ok 1 - corpus %s missing\n1..1\n", dir);
        return 1;
    }
    for (int i = 0; i < count; i++) {
        if (names[i]->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
            replay_file(path);
        }
        free(names[i]);
    }
    free(names);
    printf("1..%d\n", n);
    return 0;
}
