/*
 * conf_check.c - a helper for tests/unit/man_settings.sh:
 *
 *   conf_check names        print every setting name of the table
 *   conf_check load FILE    load FILE; print the error and exit 1 if bad
 *   conf_check dump FILE    load FILE and print the effective configuration
 */

#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "conf_int.h"

int
main(int argc, char **argv)
{
    char err[1024];
    struct conf *c;

    if (argc == 2 && strcmp(argv[1], "names") == 0) {
        for (size_t i = 0; i < conf_nsettings; i++) {
            printf("%s\n", conf_settings[i].name);
        }
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "load") != 0
                      && strcmp(argv[1], "dump") != 0)) {
        fprintf(stderr, "usage: conf_check names | load FILE | dump FILE\n");
        return 2;
    }
    if ((c = conf_load(argv[2], err, sizeof(err))) == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (strcmp(argv[1], "dump") == 0) {
        conf_dump(c, stdout);
    }
    conf_unref(c);
    return 0;
}
