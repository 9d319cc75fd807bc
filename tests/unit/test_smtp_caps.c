/*
 * test_smtp_caps.c - what SMTP backends offered to EHLO, remembered for
 * SMTP_CAPS_TTL_MS by "host:port" (src/smtp_caps.c).
 */
#include <stdio.h>
#include <string.h>

#include "smtp_caps.h"
#include "smtp_parse.h"
#include "tap.h"

int
main(void)
{
    const unsigned addr_login = SMTP_XCLIENT_ADDR | SMTP_XCLIENT_LOGIN;
    const msec_t t0 = 1000000, t1 = t0 + 3 * SMTP_CAPS_TTL_MS;
    unsigned attrs = 0;
    char name[32], longname[300];
    int all = 1;

    ok(!smtp_caps_get("127.0.0.1:25", t0, &attrs), "nothing known at first");
    smtp_caps_put("127.0.0.1:25", addr_login, t0);
    ok(smtp_caps_get("127.0.0.1:25", t0 + 1, &attrs) && attrs == addr_login,
       "what a backend offered is known");
    ok(!smtp_caps_get("127.0.0.1:2525", t0 + 1, &attrs),
       "by host and port: another port is another backend");
    ok(smtp_caps_get("127.0.0.1:25", t0 + SMTP_CAPS_TTL_MS - 1, &attrs),
       "known until SMTP_CAPS_TTL_MS has passed");
    ok(!smtp_caps_get("127.0.0.1:25", t0 + SMTP_CAPS_TTL_MS, &attrs),
       "not known once it has");
    ok(!smtp_caps_get("127.0.0.1:25", t0 - 1, &attrs),
       "nor at a time before it was learned");

    smtp_caps_put("127.0.0.1:25", SMTP_XCLIENT_ADDR, t0 + 10);
    ok(smtp_caps_get("127.0.0.1:25", t0 + 11, &attrs)
       && attrs == SMTP_XCLIENT_ADDR, "a new EHLO's answer replaces it");

    smtp_caps_refused("127.0.0.1:25", t0 + 20);
    ok(!smtp_caps_get("127.0.0.1:25", t0 + 21, &attrs),
       "a backend that refused XCLIENT before EHLO is asked first");
    smtp_caps_put("127.0.0.1:25", addr_login, t0 + 30);
    ok(!smtp_caps_get("127.0.0.1:25", t0 + 31, &attrs),
       "and its next EHLO does not undo that");
    smtp_caps_put("127.0.0.1:25", addr_login, t0 + 20 + SMTP_CAPS_TTL_MS);
    ok(smtp_caps_get("127.0.0.1:25", t0 + 21 + SMTP_CAPS_TTL_MS, &attrs)
       && attrs == addr_login, "until SMTP_CAPS_TTL_MS has passed");

    smtp_caps_refused("[2001:db8::1]:25", t0);
    ok(!smtp_caps_get("[2001:db8::1]:25", t0 + 1, &attrs),
       "refused before anything was known: asked first too");

    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    smtp_caps_put(longname, addr_login, t0);
    ok(!smtp_caps_get(longname, t0 + 1, &attrs),
       "a name longer than a slot is not kept");

    /* a full table gives the slot learned longest ago: all the above are
     * older than these */
    for (int i = 0; i < SMTP_CAPS_SLOTS; i++) {
        snprintf(name, sizeof(name), "10.0.0.%d:25", i);
        smtp_caps_put(name, addr_login, t1 + i);
    }
    ok(!smtp_caps_get("127.0.0.1:25", t1 + 100, &attrs)
       && !smtp_caps_get("[2001:db8::1]:25", t1 + 100, &attrs),
       "the oldest went first when the table filled");
    for (int i = 0; i < SMTP_CAPS_SLOTS; i++) {
        snprintf(name, sizeof(name), "10.0.0.%d:25", i);
        all &= smtp_caps_get(name, t1 + 100, &attrs);
    }
    ok(all, "the %d newest are all known", SMTP_CAPS_SLOTS);
    smtp_caps_put("10.0.1.1:25", addr_login, t1 + 200);
    ok(smtp_caps_get("10.0.1.1:25", t1 + 201, &attrs)
       && !smtp_caps_get("10.0.0.0:25", t1 + 201, &attrs)
       && smtp_caps_get("10.0.0.1:25", t1 + 201, &attrs),
       "one more replaces the oldest, and only it");
    return tap_done();
}
