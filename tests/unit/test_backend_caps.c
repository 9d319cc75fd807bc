/*
 * test_backend_caps.c - what backends answered to EHLO or CAPA, remembered
 * for BACKEND_CAPS_TTL_MS by protocol and "host:port" (src/backend_caps.c).
 */
#include <stdio.h>
#include <string.h>

#include "backend_caps.h"
#include "conn.h"
#include "tap.h"

int
main(void)
{
    const msec_t t0 = 1000000, t1 = t0 + 3 * BACKEND_CAPS_TTL_MS;
    unsigned caps = 0;
    char name[32], longname[300];
    int all = 1;

    ok(!backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0, &caps),
       "nothing known at first");
    backend_caps_put(PROTO_SMTP, "127.0.0.1:25", 6, t0);
    ok(backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0 + 1, &caps)
       && caps == 6, "what a backend answered is known");
    ok(!backend_caps_get(PROTO_SMTP, "127.0.0.1:2525", t0 + 1, &caps),
       "by host and port: another port is another backend");
    ok(!backend_caps_get(PROTO_POP3, "127.0.0.1:25", t0 + 1, &caps),
       "and by protocol");
    ok(backend_caps_get(PROTO_SMTP, "127.0.0.1:25",
                        t0 + BACKEND_CAPS_TTL_MS - 1, &caps),
       "known until BACKEND_CAPS_TTL_MS has passed");
    ok(!backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0 + BACKEND_CAPS_TTL_MS,
                         &caps), "not known once it has");
    ok(!backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0 - 1, &caps),
       "nor at a time before it was learned");

    backend_caps_put(PROTO_SMTP, "127.0.0.1:25", 0, t0 + 10);
    ok(backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0 + 11, &caps)
       && caps == 0, "a new answer replaces it, and none is an answer too");
    backend_caps_put(PROTO_POP3, "127.0.0.1:25", 1, t0 + 10);
    ok(backend_caps_get(PROTO_POP3, "127.0.0.1:25", t0 + 11, &caps)
       && caps == 1
       && backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t0 + 11, &caps)
       && caps == 0, "two protocols on one address are kept apart");

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    backend_caps_put(PROTO_SMTP, longname, 6, t0);
    ok(!backend_caps_get(PROTO_SMTP, longname, t0 + 1, &caps),
       "a name longer than session.upstream is not kept");
    longname[ADDR_TEXT_LEN - 1] = '\0';
    backend_caps_put(PROTO_SMTP, longname, 6, t0);
    ok(!backend_caps_get(PROTO_SMTP, longname, t0 + 1, &caps),
       "nor one that fills it (it may have been cut short)");
    longname[ADDR_TEXT_LEN - 2] = '\0';
    backend_caps_put(PROTO_SMTP, longname, 6, t0);
    ok(backend_caps_get(PROTO_SMTP, longname, t0 + 1, &caps),
       "one a byte shorter is");

    /* a full table gives the slot learned longest ago: all the above are
     * older than these */
    for (int i = 0; i < BACKEND_CAPS_SLOTS; i++) {
        snprintf(name, sizeof(name), "10.0.0.%d:25", i);
        backend_caps_put(PROTO_SMTP, name, 6, t1 + i);
    }
    ok(!backend_caps_get(PROTO_SMTP, "127.0.0.1:25", t1 + 100, &caps)
       && !backend_caps_get(PROTO_POP3, "127.0.0.1:25", t1 + 100, &caps),
       "the oldest went first when the table filled");
    for (int i = 0; i < BACKEND_CAPS_SLOTS; i++) {
        snprintf(name, sizeof(name), "10.0.0.%d:25", i);
        all &= backend_caps_get(PROTO_SMTP, name, t1 + 100, &caps);
    }
    ok(all, "the %d newest are all known", BACKEND_CAPS_SLOTS);
    backend_caps_put(PROTO_SMTP, "10.0.1.1:25", 6, t1 + 200);
    ok(backend_caps_get(PROTO_SMTP, "10.0.1.1:25", t1 + 201, &caps)
       && !backend_caps_get(PROTO_SMTP, "10.0.0.0:25", t1 + 201, &caps)
       && backend_caps_get(PROTO_SMTP, "10.0.0.1:25", t1 + 201, &caps),
       "one more replaces the oldest, and only it");
    return tap_done();
}
