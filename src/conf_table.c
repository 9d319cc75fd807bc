/*
 * conf_table.c - every setting of postern.conf as data, and the value
 * types that turn a libconfig value into a field of struct conf or struct
 * server_conf (and back into libconfig text for `postern -T`).
 *
 * The table is the single list of settings: the loader looks names up in
 * it, the defaults are its `def` texts parsed like any other value, the
 * dump walks it, and tests/unit/man_settings.sh compares its names with
 * man/postern.conf.5.  Input is the administrator's file; nothing here is
 * secret except auth_http_header values, which are never logged.  No
 * locks: all of this runs while one configuration is being built.
 */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "conf_int.h"
#include "imap_parse.h"
#include "pop3_parse.h"
#include "smtp_parse.h"
#include "log.h"
#include "process.h"
#include "str.h"

#ifndef POSTERN_LOCALSTATEDIR
#define POSTERN_LOCALSTATEDIR "/var"
#endif

/* notices given once per load */
enum { N_PROXY = 1u << 0, N_SSL = 1u << 1, N_SSLV = 1u << 2 };

/* "FILE:LINE: NAME: what" */
int
conf_fail(struct conf_ctx *ctx, const config_setting_t *cs, const char *name,
          const char *fmt, ...)
{
    char what[512];
    const char *file = cs ? config_setting_source_file(cs) : NULL;
    int line = cs ? (int)config_setting_source_line(cs) : 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(ctx->err, ctx->errlen, "%s:%d: %s: %s",
             file ? file : ctx->file, line > 0 ? line : 1, name, what);
    return -1;
}

/* A heap copy of path, absolute against dir. */
char *
conf_abs_path(const char *dir, const char *path)
{
    size_t n;
    char *r;

    if (path[0] == '/' || dir == NULL) {
        return strdup(path);
    }
    n = strlen(dir) + strlen(path) + 2;
    if ((r = malloc(n)) != NULL) {
        snprintf(r, n, "%s/%s", dir, path);
    }
    return r;
}

/* A value's line for a notice. */
static void
notice_once(struct conf_ctx *ctx, unsigned kind, const config_setting_t *cs,
            enum log_level lv, const char *name, const char *what)
{
    const char *file = config_setting_source_file(cs);

    /* the built-in defaults are a document read from memory (no file):
     * only what the user wrote deserves a notice */
    if (ctx->quiet || (ctx->noticed & kind) || file == NULL) {
        return;
    }
    ctx->noticed |= kind;
    log_g(lv, "%s:%d: %s: %s", file ? file : ctx->file,
          (int)config_setting_source_line(cs), name, what);
}

/* ---- helpers for dumping ------------------------------------------- */

/* Print s as a libconfig string literal, escaped. */
void
conf_dump_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            fprintf(out, "\\%c", ch);
        } else if (ch == '\n') {
            fputs("\\n", out);
        } else if (ch == '\t') {
            fputs("\\t", out);
        } else if (ch < ' ' || ch == 0x7f) {
            fprintf(out, "\\x%02x", ch);
        } else {
            fputc(ch, out);
        }
    }
    fputc('"', out);
}

/* Print the indent and "name = ". */
static void
dump_begin(FILE *out, int indent, const struct conf_setting *set)
{
    fprintf(out, "%*s%s = ", indent, "", set->name);
}

/* Print an unset optional setting as a comment. */
static void
dump_unset(FILE *out, int indent, const struct conf_setting *set)
{
    fprintf(out, "%*s# %s: unset\n", indent, "", set->name);
}

/* Print a list of strings as a libconfig array. */
static void
dump_strlist_value(FILE *out, const struct strlist *l)
{
    fputc('[', out);
    for (size_t i = 0; i < l->n; i++) {
        fputs(i ? ", " : " ", out);
        conf_dump_string(out, l->v[i]);
    }
    fputs(l->n ? " ]" : "]", out);
}

/* ---- reading libconfig values -------------------------------------- */

/* Wrong type: "expected ...". */
static int
bad_type(struct conf_ctx *ctx, const struct conf_setting *set,
         const config_setting_t *cs)
{
    return conf_fail(ctx, cs, set->name, "expected %s", set->type->expect);
}

/* A string or an array/list of strings, as a strlist (a string is a list of
 * one).  Empty strings are refused. */
static int
get_strings(struct conf_ctx *ctx, const struct conf_setting *set,
            const config_setting_t *cs, struct strlist *out)
{
    int type = config_setting_type(cs);

    memset(out, 0, sizeof(*out));
    if (type == CONFIG_TYPE_STRING) {
        const char *s = config_setting_get_string(cs);

        if (s[0] == '\0') {
            return conf_fail(ctx, cs, set->name, "empty value");
        }
        if (strlist_add(out, s) != 0) {
            return conf_fail(ctx, cs, set->name, "out of memory");
        }
        return 0;
    }
    if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST) {
        return bad_type(ctx, set, cs);
    }
    for (int i = 0; i < config_setting_length(cs); i++) {
        const config_setting_t *e = config_setting_get_elem(cs, (unsigned)i);
        const char *s;

        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            strlist_free(out);
            return bad_type(ctx, set, cs);
        }
        s = config_setting_get_string(e);
        if (s[0] == '\0') {
            strlist_free(out);
            return conf_fail(ctx, cs, set->name, "empty value");
        }
        if (strlist_add(out, s) != 0) {
            strlist_free(out);
            return conf_fail(ctx, cs, set->name, "out of memory");
        }
    }
    return 0;
}

/* One non-empty string. */
static int
get_string(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, const char **s_r)
{
    if (config_setting_type(cs) != CONFIG_TYPE_STRING) {
        return bad_type(ctx, set, cs);
    }
    *s_r = config_setting_get_string(cs);
    if ((*s_r)[0] == '\0') {
        return conf_fail(ctx, cs, set->name, "empty value");
    }
    return 0;
}

/* ---- flag ---------------------------------------------------------- */

/* true/false, or "on"/"off". */
static int
get_flag(struct conf_ctx *ctx, const struct conf_setting *set,
         const config_setting_t *cs, int *v_r)
{
    const char *s = NULL;

    if (config_setting_type(cs) == CONFIG_TYPE_BOOL) {
        *v_r = config_setting_get_bool(cs);
        return 0;
    }
    if (config_setting_type(cs) != CONFIG_TYPE_STRING) {
        return bad_type(ctx, set, cs);
    }
    s = config_setting_get_string(cs);
    if (strcasecmp(s, "on") == 0) {
        *v_r = 1;
    } else if (strcasecmp(s, "off") == 0) {
        *v_r = 0;
    } else {
        return conf_fail(ctx, cs, set->name, "invalid value \"%s\", "
                         "expected \"on\" or \"off\"", s);
    }
    return 0;
}

/* flag: the libconfig value into the field. */
static int
flag_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    return get_flag(ctx, set, cs, field);
}

/* flag: print "name = value;" for -T. */
static void
flag_dump(FILE *out, int indent, const struct conf_setting *set,
          const void *field, const void *base)
{
    dump_begin(out, indent, set);
    fprintf(out, "%s;\n", *(const int *)field ? "true" : "false");
}

/* `proxy`: accepted for compatibility, says so once. */
static int
compat_flag_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                  const config_setting_t *cs, void *field, void *base)
{
    if (get_flag(ctx, set, cs, field) != 0) {
        return -1;
    }
    notice_once(ctx, N_PROXY, cs, LOG_LV_NOTICE, set->name,
                "accepted for compatibility; it has no effect");
    return 0;
}

/* `ssl`: the deprecated form of `listen ... ssl`. */
static int
ssl_flag_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    if (get_flag(ctx, set, cs, field) != 0) {
        return -1;
    }
    if (*(int *)field) {
        notice_once(ctx, N_SSL, cs, LOG_LV_NOTICE, set->name,
                    "deprecated, use \"listen ... ssl\" instead");
    }
    return 0;
}

/* ---- int ----------------------------------------------------------- */

/* Whether c may be part of a setting's name. */
static int
name_char(int c)
{
    return isalnum(c) || c == '_' || c == '-' || c == '*';
}

/*
 * libconfig 1.5 reads an integer written without the L suffix into 32 bits
 * and drops the rest without a word: 4294967297 reads as 1, 3000000000 as
 * a negative number.  The setting's line (where its name is) shows what
 * was written: find "NAME =" or "NAME :" there and read the literal again
 * into lit.  1 when it does not fit in 32 bits; 0 when it fits or is not
 * found there (an element of a list has no name; a name given twice on
 * one line is read at its first place).
 */
static int
int_literal_wrapped(const config_setting_t *cs, char *lit, size_t litlen)
{
    const char *path = config_setting_source_file(cs);
    const char *name = config_setting_name(cs);
    unsigned line = config_setting_source_line(cs);
    char text[1024];            /* the name's line and what follows it */
    size_t len, nl = strlen(name != NULL ? name : "");
    const char *p;
    FILE *f;
    int c;

    if (path == NULL || name == NULL || line == 0
        || (f = fopen(path, "r")) == NULL) {
        return 0;
    }
    for (unsigned at = 1; at < line && (c = getc(f)) != EOF;) {
        at += c == '\n';
    }
    len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    for (p = strstr(text, name); p != NULL; p = strstr(p + 1, name)) {
        const char *q = p + nl, *digits;
        char *end;
        long long v;
        int hex;

        if ((p > text && name_char((unsigned char)p[-1]))
            || name_char((unsigned char)*q)) {
            continue;
        }
        q += strspn(q, " \t\r\n");
        if (*q != '=' && *q != ':') {
            continue;
        }
        q += 1 + strspn(q + 1, " \t\r\n");
        digits = q + (*q == '-' || *q == '+');
        hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
        if (!isdigit((unsigned char)*digits)) {
            return 0;
        }
        errno = 0;
        v = strtoll(q, &end, hex ? 16 : 10);
        if (*end == 'L' || *end == '.' || *end == 'e' || *end == 'E') {
            return 0;           /* a 64-bit integer or a float */
        }
        if (errno != ERANGE && v >= INT32_MIN && v <= INT32_MAX) {
            return 0;
        }
        snprintf(lit, litlen, "%.*s", (int)(end - q), q);
        return 1;
    }
    return 0;
}

/* An integer setting's value, refused when libconfig cut it to 32 bits. */
static int
get_int(struct conf_ctx *ctx, const struct conf_setting *set,
        const config_setting_t *cs, long long *v)
{
    char lit[64];

    if (config_setting_type(cs) == CONFIG_TYPE_INT64) {
        *v = config_setting_get_int64(cs);
        return 0;
    }
    *v = config_setting_get_int(cs);
    if (int_literal_wrapped(cs, lit, sizeof(lit))) {
        return conf_fail(ctx, cs, set->name, "%s does not fit in 32 bits "
                         "(libconfig reads it as %lld): write %sL", lit, *v,
                         lit);
    }
    return 0;
}

/* int: the libconfig value into the field. */
static int
int_parse(struct conf_ctx *ctx, const struct conf_setting *set,
          const config_setting_t *cs, void *field, void *base)
{
    long long v;

    if (config_setting_type(cs) != CONFIG_TYPE_INT
        && config_setting_type(cs) != CONFIG_TYPE_INT64) {
        return bad_type(ctx, set, cs);
    }
    if (get_int(ctx, set, cs, &v) != 0) {
        return -1;
    }
    if (v < set->min || v > set->max) {
        return conf_fail(ctx, cs, set->name, "%lld is out of range %lld..%lld",
                         v, set->min, set->max);
    }
    *(int *)field = (int)v;
    return 0;
}

/* int: print "name = value;" for -T. */
static void
int_dump(FILE *out, int indent, const struct conf_setting *set,
         const void *field, const void *base)
{
    int v = *(const int *)field;

    if ((set->flags & CF_OPTIONAL) && v < 0) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    fprintf(out, "%d;\n", v);
}

/* relay_threads: an int, or "auto" (stored as 0): one thread per online
 * CPU, resolved when the threads start, as NGINX's worker_processes auto. */
static int
threads_parse(struct conf_ctx *ctx, const struct conf_setting *set,
              const config_setting_t *cs, void *field, void *base)
{
    const char *s;

    if (config_setting_type(cs) != CONFIG_TYPE_STRING) {
        return int_parse(ctx, set, cs, field, base);
    }
    s = config_setting_get_string(cs);
    if (strcmp(s, "auto") != 0) {
        return conf_fail(ctx, cs, set->name,
                         "invalid value \"%s\", expected %s", s,
                         set->type->expect);
    }
    *(int *)field = 0;
    return 0;
}

/* relay_threads: "auto" or the number, for -T. */
static void
threads_dump(FILE *out, int indent, const struct conf_setting *set,
             const void *field, const void *base)
{
    if (*(const int *)field == 0) {
        dump_begin(out, indent, set);
        fputs("\"auto\";\n", out);
        return;
    }
    int_dump(out, indent, set, field, base);
}

/* ---- string, path -------------------------------------------------- */

/* string: the libconfig value into the field; set->max, when not 0, is
 * the most bytes it may have. */
static int
string_parse(struct conf_ctx *ctx, const struct conf_setting *set,
             const config_setting_t *cs, void *field, void *base)
{
    const char *s = NULL;

    if (get_string(ctx, set, cs, &s) != 0) {
        return -1;
    }
    if (set->max > 0 && strlen(s) > (size_t)set->max) {
        return conf_fail(ctx, cs, set->name, "%zu bytes long, more than %lld",
                         strlen(s), set->max);
    }
    if ((*(char **)field = strdup(s)) == NULL) {
        return conf_fail(ctx, cs, set->name, "out of memory");
    }
    return 0;
}

/* A file name, made absolute against the configuration file's directory,
 * or NULL with a message.  A PKCS #11 URL is refused by name: postern reads
 * every file itself, and would otherwise report a missing file. */
static char *
path_value(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, const char *s)
{
    char *abs;

    if (strncasecmp(s, "pkcs11:", 7) == 0) {
        conf_fail(ctx, cs, set->name, "\"%s\": PKCS #11 URLs are not "
                  "supported, only files", s);
        return NULL;
    }
    if ((abs = conf_abs_path(ctx->dir, s)) == NULL) {
        conf_fail(ctx, cs, set->name, "out of memory");
    }
    return abs;
}

/* file name: the libconfig value into the field. */
static int
path_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    const char *s = NULL;

    if (get_string(ctx, set, cs, &s) != 0) {
        return -1;
    }
    if ((*(char **)field = path_value(ctx, set, cs, s)) == NULL) {
        return -1;
    }
    return 0;
}

/* string: free the field and leave it empty. */
static void
string_free(void *field, void *base)
{
    free(*(char **)field);
    *(char **)field = NULL;
}

/* string: print "name = value;" for -T. */
static void
string_dump(FILE *out, int indent, const struct conf_setting *set,
            const void *field, const void *base)
{
    const char *s = *(char *const *)field;

    if (s == NULL) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    conf_dump_string(out, s);
    fputs(";\n", out);
}

/* ---- lists --------------------------------------------------------- */

/* *_capabilities: a list of capabilities that refused() lets through
 * (the protocol's own rules, and nothing postern announces itself); a bad
 * one is named with its line. */
static int
caps_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, struct strlist *l,
           const char *(*refused)(const char *))
{
    if (get_strings(ctx, set, cs, l) != 0) {
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        const char *why = refused(l->v[i]);
        const config_setting_t *e = cs;
        char shown[64];

        if (why == NULL) {
            continue;
        }
        if (config_setting_type(cs) != CONFIG_TYPE_STRING
            && config_setting_source_line(
                   config_setting_get_elem(cs, (unsigned)i)) > 0)
        {
            e = config_setting_get_elem(cs, (unsigned)i);
        }
        str_log_text((const unsigned char *)l->v[i], strlen(l->v[i]), shown,
                     sizeof(shown));
        conf_fail(ctx, e, set->name, "\"%s\": %s", shown, why);
        strlist_free(l);
        return -1;
    }
    return 0;
}

static int
imapcaps_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    return caps_parse(ctx, set, cs, field, imap_capability_refused);
}

static int
pop3caps_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    return caps_parse(ctx, set, cs, field, pop3_capability_refused);
}

static int
smtpcaps_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    return caps_parse(ctx, set, cs, field, smtp_capability_refused);
}

/* list of file names: the libconfig value into the field. */
static int
pathlist_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    struct strlist *l = field;

    if (get_strings(ctx, set, cs, l) != 0) {
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        char *abs = path_value(ctx, set, cs, l->v[i]);

        if (abs == NULL) {
            strlist_free(l);
            return -1;
        }
        free(l->v[i]);
        l->v[i] = abs;
    }
    return 0;
}

/* list: free the strings. */
static void
strlist_free_field(void *field, void *base)
{
    strlist_free(field);
}

/* list: print "name = value;" for -T. */
static void
strlist_dump(FILE *out, int indent, const struct conf_setting *set,
             const void *field, const void *base)
{
    const struct strlist *l = field;

    if ((set->flags & CF_OPTIONAL) && l->n == 0) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    dump_strlist_value(out, l);
    fputs(";\n", out);
}

/* ---- time, size ---------------------------------------------------- */

/* A time as ms.  A libconfig integer counts the setting's unit (ms, or s
 * with CF_UNIT_SEC), as configuration.md gives it; a string is NGINX's
 * syntax, where a number without a unit is seconds (conf_parse_time). */
static int
get_time(struct conf_ctx *ctx, const struct conf_setting *set,
         const config_setting_t *cs, msec_t *ms_r)
{
    int sec = (set->flags & CF_UNIT_SEC) != 0;
    long long v;

    switch (config_setting_type(cs)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (get_int(ctx, set, cs, &v) != 0) {
            return -1;
        }
        if (v < 0 || (sec && v > INT64_MAX / 1000)) {
            return conf_fail(ctx, cs, set->name, "invalid time %lld", v);
        }
        *ms_r = sec ? v * 1000 : v;
        break;
    case CONFIG_TYPE_STRING:
        if (conf_parse_time(config_setting_get_string(cs), sec, ms_r) != 0) {
            return conf_fail(ctx, cs, set->name, "invalid time \"%s\"",
                             config_setting_get_string(cs));
        }
        break;
    default:
        return bad_type(ctx, set, cs);
    }
    if (*ms_r < set->min || *ms_r > set->max) {
        char bound[64] = "";
        FILE *f = fmemopen(bound, sizeof(bound) - 1, "w");

        if (f != NULL) {
            conf_dump_time(f, *ms_r < set->min ? set->min : set->max);
            fclose(f);
        }
        return conf_fail(ctx, cs, set->name, "time out of range: %s %s",
                         *ms_r < set->min ? "the least is" : "the most is",
                         bound);
    }
    return 0;
}

/* time in ms: the libconfig value into the field. */
static int
time_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    return get_time(ctx, set, cs, field);
}

/* time in ms: print "name = value;" for -T. */
static void
time_dump(FILE *out, int indent, const struct conf_setting *set,
          const void *field, const void *base)
{
    msec_t v = *(const msec_t *)field;

    if ((set->flags & CF_OPTIONAL) && v < 0) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    conf_dump_time(out, v);
    fputs(";\n", out);
}

/* A time kept as int seconds (ssl_session_timeout). */
static int
time_sec_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    msec_t ms;

    if (get_time(ctx, set, cs, &ms) != 0) {
        return -1;
    }
    *(int *)field = (int)(ms / 1000);
    return 0;
}

/* time in seconds: print "name = value;" for -T. */
static void
time_sec_dump(FILE *out, int indent, const struct conf_setting *set,
              const void *field, const void *base)
{
    dump_begin(out, indent, set);
    conf_dump_time(out, (msec_t)*(const int *)field * 1000);
    fputs(";\n", out);
}

/* size: the libconfig value into the field. */
static int
size_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    size_t v;
    long long i;

    switch (config_setting_type(cs)) {
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        if (get_int(ctx, set, cs, &i) != 0) {
            return -1;
        }
        if (i < 0) {
            return conf_fail(ctx, cs, set->name, "invalid size %lld", i);
        }
        v = (size_t)i;
        break;
    case CONFIG_TYPE_STRING:
        if (conf_parse_size(config_setting_get_string(cs), &v) != 0) {
            return conf_fail(ctx, cs, set->name, "invalid size \"%s\"",
                             config_setting_get_string(cs));
        }
        break;
    default:
        return bad_type(ctx, set, cs);
    }
    if ((long long)v < set->min || (long long)v > set->max) {
        return conf_fail(ctx, cs, set->name, "%zu is out of range %lld..%lld",
                         v, set->min, set->max);
    }
    *(size_t *)field = v;
    return 0;
}

/* size: print "name = value;" for -T. */
static void
size_dump(FILE *out, int indent, const struct conf_setting *set,
          const void *field, const void *base)
{
    size_t v = *(const size_t *)field;

    dump_begin(out, indent, set);
    if (v != 0 && v % (1024 * 1024) == 0) {
        fprintf(out, "\"%zum\";\n", v / (1024 * 1024));
    } else if (v != 0 && v % 1024 == 0) {
        fprintf(out, "\"%zuk\";\n", v / 1024);
    } else {
        fprintf(out, "%zu;\n", v);
    }
}

/* ---- pairs (auth_http_header) -------------------------------------- */

/* auth_http_header pairs: free the field and leave it empty. */
static void
pairs_free(void *field, void *base)
{
    struct pairlist *p = field;

    for (size_t i = 0; i < p->n; i++) {
        free(p->name[i]);
        free(p->value[i]);
    }
    free(p->name);
    free(p->value);
    memset(p, 0, sizeof(*p));
}

/* A header name: an HTTP token. */
static int
header_name_ok(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f
            || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL) {
            return 0;
        }
    }
    return 1;
}

/* Add one ["Name", "value"] pair. */
static int
pair_add(struct conf_ctx *ctx, const struct conf_setting *set,
         const config_setting_t *cs, const config_setting_t *e,
         struct pairlist *p)
{
    const char *n, *v;
    char **nn, **nv;

    if (config_setting_length(e) != 2
        || (n = config_setting_get_string_elem(e, 0)) == NULL
        || (v = config_setting_get_string_elem(e, 1)) == NULL) {
        return bad_type(ctx, set, cs);
    }
    if (!header_name_ok(n)) {
        return conf_fail(ctx, cs, set->name, "invalid header name \"%s\"", n);
    }
    if (strpbrk(v, "\r\n") != NULL) {
        return conf_fail(ctx, cs, set->name, "CR or LF in the value of "
                         "header \"%s\"", n);
    }
    nn = realloc(p->name, (p->n + 1) * sizeof(*nn));
    if (nn != NULL) {
        p->name = nn;
    }
    nv = realloc(p->value, (p->n + 1) * sizeof(*nv));
    if (nv != NULL) {
        p->value = nv;
    }
    if (nn == NULL || nv == NULL) {
        return conf_fail(ctx, cs, set->name, "out of memory");
    }
    p->name[p->n] = strdup(n);
    p->value[p->n] = strdup(v);
    p->n++;
    if (p->name[p->n - 1] == NULL || p->value[p->n - 1] == NULL) {
        return conf_fail(ctx, cs, set->name, "out of memory");
    }
    return 0;
}

/* auth_http_header pairs: the libconfig value into the field. */
static int
pairs_parse(struct conf_ctx *ctx, const struct conf_setting *set,
            const config_setting_t *cs, void *field, void *base)
{
    struct pairlist *p = field;
    int type = config_setting_type(cs);

    if (type == CONFIG_TYPE_ARRAY && config_setting_length(cs) == 2
        && config_setting_get_string_elem(cs, 0) != NULL) {
        /* one pair written without the outer list */
        if (pair_add(ctx, set, cs, cs, p) != 0) {
            pairs_free(p, base);
            return -1;
        }
        return 0;
    }
    if (type != CONFIG_TYPE_LIST && type != CONFIG_TYPE_ARRAY) {
        return bad_type(ctx, set, cs);
    }
    for (int i = 0; i < config_setting_length(cs); i++) {
        const config_setting_t *e = config_setting_get_elem(cs, (unsigned)i);

        if (config_setting_type(e) != CONFIG_TYPE_ARRAY
            && config_setting_type(e) != CONFIG_TYPE_LIST) {
            pairs_free(p, base);
            return bad_type(ctx, set, cs);
        }
        if (pair_add(ctx, set, cs, e, p) != 0) {
            pairs_free(p, base);
            return -1;
        }
    }
    return 0;
}

/* auth_http_header pairs: print "name = value;" for -T. */
static void
pairs_dump(FILE *out, int indent, const struct conf_setting *set,
           const void *field, const void *base)
{
    const struct pairlist *p = field;

    dump_begin(out, indent, set);
    fputc('(', out);
    for (size_t i = 0; i < p->n; i++) {
        fputs(i ? ", [" : " [", out);
        conf_dump_string(out, p->name[i]);
        fputs(", ", out);
        conf_dump_string(out, p->value[i]);
        fputc(']', out);
    }
    fputs(p->n ? " );\n" : ");\n", out);
}

/* ---- listen -------------------------------------------------------- */

/* listen: free the field and leave it empty. */
static void
listen_free(void *field, void *base)
{
    struct server_conf *sc = base;

    for (size_t i = 0; i < sc->nlisten; i++) {
        listen_conf_free(&sc->listen[i]);
    }
    free(sc->listen);
    sc->listen = NULL;
    sc->nlisten = 0;
}

/*
 * A host name's further addresses become entries of their own after
 * sc->listen[i] (room for them is there), each an alias that -T does not
 * print again.  0, or -1 out of memory.
 */
static int
listen_split(struct server_conf *sc, size_t i)
{
    struct listen_conf *first = &sc->listen[i];

    for (size_t k = 0; k < first->nmore; k++) {
        struct listen_conf *l = &sc->listen[sc->nlisten];

        *l = *first;
        l->more = NULL;
        l->nmore = 0;
        l->alias = 1;
        l->addr = first->more[k];
        l->addrlen = l->addr.ss_family == AF_INET
                     ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        l->text = strdup(first->text);
        l->host = strdup(first->host);
        sc->nlisten++;
        if (l->text == NULL || l->host == NULL) {
            return -1;
        }
    }
    free(first->more);
    first->more = NULL;
    first->nmore = 0;
    return 0;
}

/* listen: the libconfig value into the field. */
static int
listen_parse(struct conf_ctx *ctx, const struct conf_setting *set,
             const config_setting_t *cs, void *field, void *base)
{
    struct server_conf *sc = base;
    struct strlist l;
    char msg[256];
    size_t cap;
    int rc = -1;

    if (get_strings(ctx, set, cs, &l) != 0) {
        return -1;
    }
    if (l.n == 0) {
        strlist_free(&l);
        return conf_fail(ctx, cs, set->name, "empty value");
    }
    cap = l.n;
    if ((sc->listen = calloc(cap, sizeof(*sc->listen))) == NULL) {
        conf_fail(ctx, cs, set->name, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *v = l.v[i], *abs = NULL;
        struct listen_conf one;

        /* a relative UNIX socket path is taken from the file's directory */
        if (strncmp(v, "unix:", 5) == 0 && v[5] != '/' && v[5] != '\0') {
            size_t n = strlen(ctx->dir) + strlen(v) + 2;

            if ((abs = malloc(n)) == NULL) {
                conf_fail(ctx, cs, set->name, "out of memory");
                goto out;
            }
            snprintf(abs, n, "unix:%s/%s", ctx->dir, v + 5);
            v = abs;
        }
        rc = conf_parse_listen(v, &one, msg, sizeof(msg));
        free(abs);
        if (rc != 0) {
            conf_fail(ctx, cs, set->name, "%s", msg);
            goto out;
        }
        rc = -1;
        if (sc->nlisten + 1 + one.nmore > cap) {
            size_t ncap = sc->nlisten + 1 + one.nmore + (l.n - i - 1);
            struct listen_conf *nv = realloc(sc->listen, ncap * sizeof(*nv));

            if (nv == NULL) {
                listen_conf_free(&one);
                conf_fail(ctx, cs, set->name, "out of memory");
                goto out;
            }
            sc->listen = nv;
            cap = ncap;
        }
        one.line = (int)config_setting_source_line(cs);
        sc->listen[sc->nlisten++] = one;
        if (listen_split(sc, sc->nlisten - 1) != 0) {
            conf_fail(ctx, cs, set->name, "out of memory");
            goto out;
        }
    }
    rc = 0;

out:
    if (rc != 0) {
        listen_free(field, base);
    }
    strlist_free(&l);
    return rc;
}

/* listen: print "name = value;" for -T. */
static void
listen_dump(FILE *out, int indent, const struct conf_setting *set,
            const void *field, const void *base)
{
    const struct server_conf *sc = base;

    dump_begin(out, indent, set);
    fputc('[', out);
    for (size_t i = 0; i < sc->nlisten; i++) {
        if (!sc->listen[i].alias) {
            fputs(i ? ", " : " ", out);
            conf_dump_string(out, sc->listen[i].text);
        }
    }
    fputs(" ];\n", out);
}

/* ---- enumerations -------------------------------------------------- */

struct enum_name {
    const char *name;
    int value;
};

static const struct enum_name proto_names[] = {
    { "imap", PROTO_IMAP }, { "pop3", PROTO_POP3 }, { "smtp", PROTO_SMTP },
    { NULL, 0 }
};
static const struct enum_name starttls_names[] = {
    { "off", STARTTLS_OFF }, { "on", STARTTLS_ON }, { "only", STARTTLS_ONLY },
    { NULL, 0 }
};
static const struct enum_name verify_names[] = {
    { "off", VERIFY_OFF }, { "on", VERIFY_ON },
    { "optional", VERIFY_OPTIONAL },
    { "optional_no_ca", VERIFY_OPTIONAL_NO_CA },
    { NULL, 0 }
};

/* Which name table a setting uses. */
static const struct enum_name *
enum_names(const struct conf_setting *set)
{
    if (strcmp(set->name, "protocol") == 0) {
        return proto_names;
    }
    if (strcmp(set->name, "starttls") == 0) {
        return starttls_names;
    }
    return verify_names;
}

/* One of the names; for on/off enums a boolean is accepted too. */
static int
enum_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    const struct enum_name *names = enum_names(set);
    const char *s = NULL;
    char allowed[128] = "";

    if (config_setting_type(cs) == CONFIG_TYPE_BOOL && names != proto_names) {
        *(int *)field = config_setting_get_bool(cs) ? 1 : 0;  /* on / off */
        return 0;
    }
    if (config_setting_type(cs) != CONFIG_TYPE_STRING) {
        return bad_type(ctx, set, cs);
    }
    s = config_setting_get_string(cs);
    for (const struct enum_name *e = names; e->name != NULL; e++) {
        if (strcasecmp(s, e->name) == 0) {
            *(int *)field = e->value;
            return 0;
        }
        snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
                 "%s\"%s\"", e == names ? "" : ", ", e->name);
    }
    return conf_fail(ctx, cs, set->name, "invalid value \"%s\", expected "
                     "one of %s", s, allowed);
}

/* enumeration: print "name = value;" for -T. */
static void
enum_dump(FILE *out, int indent, const struct conf_setting *set,
          const void *field, const void *base)
{
    int v = *(const int *)field;

    dump_begin(out, indent, set);
    for (const struct enum_name *e = enum_names(set); e->name != NULL; e++) {
        if (e->value == v) {
            fprintf(out, "\"%s\";\n", e->name);
            return;
        }
    }
    fputs("\"?\";\n", out);
}

/* ---- auth methods -------------------------------------------------- */

static const struct enum_name method_names[] = {
    { "plain", AUTH_M_PLAIN }, { "login", AUTH_M_LOGIN },
    { "apop", AUTH_M_APOP }, { "cram-md5", AUTH_M_CRAM_MD5 },
    { "external", AUTH_M_EXTERNAL }, { "none", AUTH_M_NONE },
    { NULL, 0 }
};

/* auth methods: the libconfig value into the field. */
static int
methods_parse(struct conf_ctx *ctx, const struct conf_setting *set,
              const config_setting_t *cs, void *field, void *base)
{
    struct strlist l;
    unsigned mask = 0;
    int rc = -1;

    if (get_strings(ctx, set, cs, &l) != 0) {
        return -1;
    }
    if (l.n == 0) {
        conf_fail(ctx, cs, set->name, "at least one method is needed");
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct enum_name *e;

        for (e = method_names; e->name != NULL; e++) {
            if (strcasecmp(l.v[i], e->name) == 0
                && (set->aux & (unsigned)e->value)) {
                break;
            }
        }
        if (e->name == NULL) {
            conf_fail(ctx, cs, set->name, "unknown method \"%s\"", l.v[i]);
            goto out;
        }
        mask |= (unsigned)e->value;
    }
    *(unsigned *)field = mask;
    rc = 0;

out:
    strlist_free(&l);
    return rc;
}

/* auth methods: print "name = value;" for -T. */
static void
methods_dump(FILE *out, int indent, const struct conf_setting *set,
             const void *field, const void *base)
{
    unsigned mask = *(const unsigned *)field;
    int first = 1;

    dump_begin(out, indent, set);
    fputc('[', out);
    for (const struct enum_name *e = method_names; e->name != NULL; e++) {
        if (mask & (unsigned)e->value) {
            fprintf(out, "%s\"%s\"", first ? " " : ", ", e->name);
            first = 0;
        }
    }
    fputs(" ];\n", out);
}

/* ---- addresses: set_real_ip_from, access --------------------------- */

/* address rules: free the field and leave it empty. */
static void
rules_free(void *field, void *base)
{
    struct addr_rules *r = field;

    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* address rules: the libconfig value into the field. */
static int
rules_parse(struct conf_ctx *ctx, const struct conf_setting *set,
            const config_setting_t *cs, void *field, void *base)
{
    struct addr_rules *r = field;
    struct strlist l;
    int rc = -1;

    if (get_strings(ctx, set, cs, &l) != 0) {
        return -1;
    }
    if (l.n > 0 && (r->v = calloc(l.n, sizeof(*r->v))) == NULL) {
        conf_fail(ctx, cs, set->name, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (conf_parse_addr_rule(l.v[i], (int)set->aux, &r->v[i]) != 0) {
            conf_fail(ctx, cs, set->name, "invalid %s \"%s\"",
                      set->aux ? "rule" : "address", l.v[i]);
            rules_free(r, base);
            goto out;
        }
        r->n++;
    }
    rc = 0;

out:
    strlist_free(&l);
    return rc;
}

/* address rules: print "name = value;" for -T. */
static void
rules_dump(FILE *out, int indent, const struct conf_setting *set,
           const void *field, const void *base)
{
    const struct addr_rules *r = field;
    char buf[INET6_ADDRSTRLEN + 16];

    dump_begin(out, indent, set);
    fputc('[', out);
    for (size_t i = 0; i < r->n; i++) {
        conf_addr_rule_text(&r->v[i], (int)set->aux, buf, sizeof(buf));
        fprintf(out, "%s\"%s\"", i ? ", " : " ", buf);
    }
    fputs(r->n ? " ];\n" : "];\n", out);
}

/* ---- resolver, auth_http ------------------------------------------- */

/* resolver: the libconfig value into the field. */
static int
resolver_parse(struct conf_ctx *ctx, const struct conf_setting *set,
               const config_setting_t *cs, void *field, void *base)
{
    const char *s = NULL;
    char msg[256];

    if (get_string(ctx, set, cs, &s) != 0) {
        return -1;
    }
    if (conf_parse_resolver(s, field, msg, sizeof(msg)) != 0) {
        return conf_fail(ctx, cs, set->name, "%s", msg);
    }
    return 0;
}

/* resolver: free the field and leave it empty. */
static void
resolver_free(void *field, void *base)
{
    resolver_conf_free(field);
}

/* resolver: print "name = value;" for -T. */
static void
resolver_dump(FILE *out, int indent, const struct conf_setting *set,
              const void *field, const void *base)
{
    const struct resolver_conf *r = field;

    dump_begin(out, indent, set);
    if (!r->enabled) {
        fputs("\"off\";\n", out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < r->servers.n; i++) {
        fprintf(out, "%s%s", i ? " " : "", r->servers.v[i]);
    }
    if (r->valid_sec >= 0) {
        fprintf(out, " valid=%ds", r->valid_sec);
    }
    fprintf(out, " ipv4=%s ipv6=%s\";\n", r->ipv4 ? "on" : "off",
            r->ipv6 ? "on" : "off");
}

/* The addresses of u's host, looked up once per load (conf_ctx). */
static int
auth_http_resolve_once(struct conf_ctx *ctx, struct auth_http_url *u,
                       char *msg, size_t msglen)
{
    struct auth_http_url *seen = &ctx->auth_http_seen;
    size_t size;

    if (u->is_unix) {
        return 0;
    }
    if (seen->host == NULL || strcmp(seen->host, u->host) != 0
        || seen->port != u->port) {
        auth_http_url_free(seen);
        if (conf_resolve_auth_http(u, msg, msglen) != 0) {
            return -1;
        }
        seen->host = strdup(u->host);
        seen->port = u->port;
        seen->addrs = malloc(u->naddrs * sizeof(*u->addrs));
        if (seen->host == NULL || seen->addrs == NULL) {
            auth_http_url_free(seen);       /* only a lookup more */
            return 0;
        }
        memcpy(seen->addrs, u->addrs, u->naddrs * sizeof(*u->addrs));
        seen->naddrs = u->naddrs;
        return 0;
    }
    size = seen->naddrs * sizeof(*seen->addrs);
    if ((u->addrs = malloc(size)) == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    memcpy(u->addrs, seen->addrs, size);
    u->naddrs = seen->naddrs;
    return 0;
}

/* auth_http URL: the libconfig value into the field. */
static int
auth_http_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                const config_setting_t *cs, void *field, void *base)
{
    struct auth_http_url *u;
    const char *s = NULL;
    char msg[256], *abs = NULL;
    int rc;

    if (get_string(ctx, set, cs, &s) != 0) {
        return -1;
    }
    /* a relative UNIX socket path is taken from the file's directory */
    if (strncmp(s, "unix:", 5) == 0 && s[5] != '/' && s[5] != '\0') {
        size_t n = strlen(ctx->dir) + strlen(s) + 2;

        if ((abs = malloc(n)) == NULL) {
            return conf_fail(ctx, cs, set->name, "out of memory");
        }
        snprintf(abs, n, "unix:%s/%s", ctx->dir, s + 5);
        s = abs;
    }
    if ((u = calloc(1, sizeof(*u))) == NULL) {
        free(abs);
        return conf_fail(ctx, cs, set->name, "out of memory");
    }
    rc = conf_parse_auth_http(s, u, msg, sizeof(msg));
    free(abs);
    if (rc != 0) {
        free(u);
        return conf_fail(ctx, cs, set->name, "%s", msg);
    }
    if (auth_http_resolve_once(ctx, u, msg, sizeof(msg)) != 0) {
        auth_http_url_free(u);
        free(u);
        return conf_fail(ctx, cs, set->name, "%s", msg);
    }
    *(struct auth_http_url **)field = u;
    return 0;
}

/* auth_http URL: free the field and leave it empty. */
static void
auth_http_free(void *field, void *base)
{
    struct auth_http_url **u = field;

    if (*u != NULL) {
        auth_http_url_free(*u);
        free(*u);
        *u = NULL;
    }
}

/* auth_http URL: print "name = value;" for -T. */
static void
auth_http_dump(FILE *out, int indent, const struct conf_setting *set,
               const void *field, const void *base)
{
    const struct auth_http_url *u = *(struct auth_http_url *const *)field;

    if (u == NULL) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    conf_dump_string(out, u->text);
    fputs(";\n", out);
}

/* ---- TLS lists ----------------------------------------------------- */

/* ssl_protocols: the libconfig value into the field. */
static int
protocols_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                const config_setting_t *cs, void *field, void *base)
{
    static const char *const known[] = {
        "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", NULL
    };
    struct strlist l, *kept = field;
    int rc = -1;

    if (get_strings(ctx, set, cs, &l) != 0) {
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        size_t k;

        if (strcmp(l.v[i], "SSLv2") == 0 || strcmp(l.v[i], "SSLv3") == 0) {
            if (!ctx->quiet) {
                const char *file = config_setting_source_file(cs);

                log_g(LOG_LV_WARN, "%s:%d: %s: %s is not supported by GnuTLS "
                      "and is left out", file ? file : ctx->file,
                      (int)config_setting_source_line(cs), set->name, l.v[i]);
            }
            continue;
        }
        for (k = 0; known[k] != NULL && strcmp(known[k], l.v[i]) != 0; k++) {
        }
        if (known[k] == NULL) {
            conf_fail(ctx, cs, set->name, "unknown protocol \"%s\"", l.v[i]);
            goto out;
        }
        if (strlist_add(kept, l.v[i]) != 0) {
            conf_fail(ctx, cs, set->name, "out of memory");
            goto out;
        }
    }
    if (kept->n == 0) {
        conf_fail(ctx, cs, set->name, "no supported protocol left");
        goto out;
    }
    rc = 0;

out:
    if (rc != 0) {
        strlist_free(kept);
    }
    strlist_free(&l);
    return rc;
}

/* ssl_session_cache: the libconfig value into the field. */
static int
session_cache_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                    const config_setting_t *cs, void *field, void *base)
{
    struct strlist l, *toks = field;
    int rc = -1, builtin = 0, alone = 0;

    if (get_strings(ctx, set, cs, &l) != 0) {
        return -1;
    }
    for (size_t i = 0; i < l.n; i++) {
        char *save = NULL;

        for (char *t = strtok_r(l.v[i], " \t", &save); t != NULL;
             t = strtok_r(NULL, " \t", &save)) {
            if (!conf_check_session_cache_token(t)) {
                conf_fail(ctx, cs, set->name, "invalid token \"%s\"", t);
                goto out;
            }
            if (strncmp(t, "builtin", 7) == 0 && builtin++) {
                conf_fail(ctx, cs, set->name, "builtin given twice");
                goto out;
            }
            alone += strcmp(t, "off") == 0 || strcmp(t, "none") == 0;
            if (strlist_add(toks, t) != 0) {
                conf_fail(ctx, cs, set->name, "out of memory");
                goto out;
            }
        }
    }
    if (toks->n == 0) {
        conf_fail(ctx, cs, set->name, "empty value");
        goto out;
    }
    if (alone && toks->n > 1) {
        conf_fail(ctx, cs, set->name, "\"off\" and \"none\" must stand alone");
        goto out;
    }
    rc = 0;

out:
    if (rc != 0) {
        strlist_free(toks);
    }
    strlist_free(&l);
    return rc;
}

/* ssl_conf_command: always an error. */
static int
openssl_only_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                   const config_setting_t *cs, void *field, void *base)
{
    return conf_fail(ctx, cs, set->name, "OpenSSL-specific, not supported "
                     "with GnuTLS (use ssl_priority)");
}

/* ---- error_log, user ----------------------------------------------- */

/* "FILE [LEVEL]" values, with a relative FILE made absolute (the struct
 * log is built by the loader, which knows who owns it). */
static int
error_log_parse(struct conf_ctx *ctx, const struct conf_setting *set,
                const config_setting_t *cs, void *field, void *base)
{
    struct strlist *l = field;

    if (get_strings(ctx, set, cs, l) != 0) {
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        char *v = l->v[i], *sp = strchr(v, ' '), *abs, *n;
        size_t len;

        if (v[0] == '/' || v[0] == ' ' || strncmp(v, "stderr", 6) == 0
            || strncmp(v, "syslog:", 7) == 0) {
            continue;
        }
        if (sp != NULL) {
            *sp = '\0';
        }
        abs = conf_abs_path(ctx->dir, v);
        if (abs == NULL) {
            strlist_free(l);
            return conf_fail(ctx, cs, set->name, "out of memory");
        }
        len = strlen(abs) + (sp ? strlen(sp + 1) + 1 : 0) + 1;
        if ((n = malloc(len)) == NULL) {
            free(abs);
            strlist_free(l);
            return conf_fail(ctx, cs, set->name, "out of memory");
        }
        snprintf(n, len, "%s%s%s", abs, sp ? " " : "", sp ? sp + 1 : "");
        free(abs);
        free(v);
        l->v[i] = n;
    }
    return 0;
}

/* error_log: print "name = value;" for -T. */
static void
error_log_dump(FILE *out, int indent, const struct conf_setting *set,
               const void *field, const void *base)
{
    dump_begin(out, indent, set);
    dump_strlist_value(out, field);
    fputs(";\n", out);
}

/* "USER [GROUP]" into conf->user, conf->group. */
static int
user_parse(struct conf_ctx *ctx, const struct conf_setting *set,
           const config_setting_t *cs, void *field, void *base)
{
    struct conf *c = base;
    char buf[512], *tok[3] = { NULL, NULL, NULL }, *save = NULL;
    const char *s = NULL;
    int n = 0;

    if (get_string(ctx, set, cs, &s) != 0) {
        return -1;
    }
    if (str_lcpy(buf, s, sizeof(buf)) >= sizeof(buf)) {
        return conf_fail(ctx, cs, set->name, "value too long");
    }
    for (char *t = strtok_r(buf, " \t", &save); t != NULL && n < 3;
         t = strtok_r(NULL, " \t", &save)) {
        tok[n++] = t;
    }
    if (n < 1 || n > 2) {
        return conf_fail(ctx, cs, set->name, "invalid value \"%s\", "
                         "expected \"USER [GROUP]\"", s);
    }
    c->user = strdup(tok[0]);
    c->group = tok[1] ? strdup(tok[1]) : NULL;
    if (c->user == NULL || (tok[1] && c->group == NULL)) {
        return conf_fail(ctx, cs, set->name, "out of memory");
    }
    /* as NGINX: as root, an unknown user or group is an error of this line
     * (once postern runs as the user, a reload neither can nor needs to
     * switch again, and the names are not looked up) */
    if (geteuid() == 0) {
        char msg[300];
        uid_t uid;
        gid_t gid;

        if (process_lookup_user(c->user, c->group, &uid, &gid, msg,
                                sizeof(msg)) != 0) {
            return conf_fail(ctx, cs, set->name, "%s", msg);
        }
    }
    return 0;
}

/* user: free the field and leave it empty. */
static void
user_free(void *field, void *base)
{
    struct conf *c = base;

    free(c->user);
    free(c->group);
    c->user = NULL;
    c->group = NULL;
}

/* user: print "name = value;" for -T. */
static void
user_dump(FILE *out, int indent, const struct conf_setting *set,
          const void *field, const void *base)
{
    const struct conf *c = base;

    if (c->user == NULL) {
        dump_unset(out, indent, set);
        return;
    }
    dump_begin(out, indent, set);
    fprintf(out, "\"%s%s%s\";\n", c->user, c->group ? " " : "",
            c->group ? c->group : "");
}

/* A setting kept for compatibility: a comment, so that loading the dump
 * does not log the compatibility notice a configuration that names it
 * earns. */
static void
compat_dump(FILE *out, int indent, const struct conf_setting *set,
            const void *field, const void *base)
{
    fprintf(out, "%*s# %s: accepted for compatibility, no effect\n", indent,
            "", set->name);
}

/* For values that own no memory. */
static void
no_free(void *field, void *base)
{
}

/* ---- the types ----------------------------------------------------- */

#define TYPE(n, e, p, f, d) { n, e, p, f, d }

static const struct conf_type
    t_flag = TYPE("flag", "a flag (true, false, \"on\" or \"off\")",
                  flag_parse, no_free, flag_dump),
    t_compat = TYPE("flag", "a flag (true, false, \"on\" or \"off\")",
                    compat_flag_parse, no_free, compat_dump),
    t_sslflag = TYPE("flag", "a flag (true, false, \"on\" or \"off\")",
                     ssl_flag_parse, no_free, flag_dump),
    t_int = TYPE("int", "an integer", int_parse, no_free, int_dump),
    t_threads = TYPE("int or \"auto\"", "an integer or \"auto\"",
                     threads_parse, no_free, threads_dump),
    t_string = TYPE("string", "a string", string_parse, string_free,
                    string_dump),
    t_path = TYPE("path", "a string (a file name)", path_parse, string_free,
                  string_dump),
    t_imapcaps = TYPE("list", "a string or a list of strings",
                      imapcaps_parse, strlist_free_field, strlist_dump),
    t_pop3caps = TYPE("list", "a string or a list of strings",
                      pop3caps_parse, strlist_free_field, strlist_dump),
    t_smtpcaps = TYPE("list", "a string or a list of strings",
                      smtpcaps_parse, strlist_free_field, strlist_dump),
    t_pathlist = TYPE("list", "a string or a list of strings (file names)",
                      pathlist_parse, strlist_free_field, strlist_dump),
    t_time = TYPE("time", "a time (\"60s\", \"1h30m\" or a number)",
                  time_parse, no_free, time_dump),
    t_time_sec = TYPE("time", "a time (\"5m\", \"1h\" or seconds)",
                      time_sec_parse, no_free, time_sec_dump),
    t_size = TYPE("size", "a size (\"16k\", \"1m\" or bytes)", size_parse,
                  no_free, size_dump),
    t_pairs = TYPE("pairs", "a list of [\"Name\", \"value\"] pairs",
                   pairs_parse, pairs_free, pairs_dump),
    t_listen = TYPE("listen", "a string or a list of strings", listen_parse,
                    listen_free, listen_dump),
    t_enum = TYPE("string", "a string", enum_parse, no_free, enum_dump),
    t_methods = TYPE("list", "a string or a list of strings", methods_parse,
                     no_free, methods_dump),
    t_rules = TYPE("list", "a string or a list of strings", rules_parse,
                   rules_free, rules_dump),
    t_resolver = TYPE("string", "a string", resolver_parse, resolver_free,
                      resolver_dump),
    t_auth_http = TYPE("string", "a string (an URL)", auth_http_parse,
                       auth_http_free, auth_http_dump),
    t_protocols = TYPE("list", "a string or a list of strings",
                       protocols_parse, strlist_free_field, strlist_dump),
    t_cache = TYPE("string", "a string or a list of strings",
                   session_cache_parse, strlist_free_field, strlist_dump),
    t_openssl = TYPE("any", "anything", openssl_only_parse, no_free, NULL),
    t_error_log = TYPE("string", "a string or a list of strings",
                       error_log_parse, strlist_free_field, error_log_dump),
    t_user = TYPE("string", "a string", user_parse, user_free, user_dump);

/* handled by the loader itself */
const struct conf_type conf_type_group = TYPE("group", "a group { ... }",
                                              NULL, no_free, NULL);
const struct conf_type conf_type_servers =
    TYPE("list", "a list of groups ( { ... }, ... )", NULL, no_free, NULL);

#define T(f) offsetof(struct conf, f), -1
#define S(f) -1, offsetof(struct server_conf, f)
#define NOFIELD -1, -1
#define SRVSCOPE (SC_MAIL | SC_SERVER)
#define TMAX (INT64_MAX / 2)

/* every setting, in the order of the man page and of `postern -T` */
const struct conf_setting conf_settings[] = {
    /* top level */
    { "daemon", &t_flag, SC_TOP, "true", "true", T(daemon), 0, 0, 0, 0 },
    { "user", &t_user, SC_TOP, NULL, "unset: keep the starting user",
      T(user), 0, 0, CF_OPTIONAL | CF_DYNAMIC, 0 },
    { "pid", &t_path, SC_TOP, "\"" POSTERN_LOCALSTATEDIR "/run/postern.pid\"",
      POSTERN_LOCALSTATEDIR "/run/postern.pid", T(pid), 0, 0, 0, 0 },
    { "error_log", &t_error_log, SC_TOP | SRVSCOPE,
      "\"" POSTERN_LOCALSTATEDIR "/log/postern/error.log error\"",
      POSTERN_LOCALSTATEDIR "/log/postern/error.log error",
      offsetof(struct conf, error_log_spec),
      offsetof(struct server_conf, error_log_spec), 0, 0, 0, 0 },
    { "worker_threads", &t_int, SC_TOP, "32", "32", T(worker_threads),
      1, 10000, 0, 0 },
    { "relay_threads", &t_threads, SC_TOP, "1", "1", T(relay_threads),
      1, 1024, 0, 0 },
    { "worker_connections", &t_int, SC_TOP, "1024", "1024",
      T(worker_connections), 1, 10000000, 0, 0 },
    { "worker_rlimit_nofile", &t_int, SC_TOP, NULL, "unset",
      T(worker_rlimit_nofile), 1, INT_MAX, CF_OPTIONAL, 0 },
    { "shutdown_timeout", &t_time, SC_TOP, NULL,
      "unset: wait for sessions to end", T(shutdown_timeout), 0, TMAX,
      CF_OPTIONAL, 0 },
    { "mail", &conf_type_group, SC_TOP, NULL, "required", NOFIELD,
      0, 0, 0, 0 },
    { "servers", &conf_type_servers, SC_MAIL, NULL, "required", NOFIELD,
      0, 0, 0, 0 },

    /* server: core */
    { "listen", &t_listen, SC_SERVER, NULL, "required", S(nlisten),
      0, 0, 0, 0 },
    { "protocol", &t_enum, SC_SERVER, NULL, "from the port", S(protocol),
      0, 0, CF_DYNAMIC, 0 },
    { "server_name", &t_string, SRVSCOPE, NULL, "the host name",
      S(server_name), 0, SERVER_NAME_MAX, CF_DYNAMIC, 0 },
    { "timeout", &t_time, SRVSCOPE, "\"60s\"", "60s", S(timeout), 1, TMAX,
      0, 0 },
    { "max_errors", &t_int, SRVSCOPE, "5", "5", S(max_errors), 0, 100000,
      0, 0 },
    { "resolver", &t_resolver, SRVSCOPE, "\"off\"", "off", S(resolver),
      0, 0, 0, 0 },
    { "resolver_timeout", &t_time, SRVSCOPE, "\"30s\"", "30s",
      S(resolver_timeout), 1, TMAX, 0, 0 },
    { "set_real_ip_from", &t_rules, SRVSCOPE, "[]", "empty",
      S(set_real_ip_from), 0, 0, 0, 0 },
    { "preauth_per_client", &t_int, SRVSCOPE, NULL,
      "worker_threads / 4, at least 1", S(preauth_per_client), 1, 100000,
      CF_DYNAMIC, 0 },
    { "access", &t_rules, SRVSCOPE, "[]", "allow all", S(access), 0, 0, 0,
      1 },

    /* server: authentication */
    { "auth_http", &t_auth_http, SRVSCOPE, NULL, "unset", S(auth_http),
      0, 0, CF_OPTIONAL, 0 },
    { "auth_http_header", &t_pairs, SRVSCOPE, "()", "empty",
      S(auth_http_header), 0, 0, 0, 0 },
    { "auth_http_timeout", &t_time, SRVSCOPE, "\"60s\"", "60s",
      S(auth_http_timeout), 1, TMAX, 0, 0 },
    { "auth_http_pass_client_cert", &t_flag, SRVSCOPE, "false", "false",
      S(auth_http_pass_client_cert), 0, 0, 0, 0 },
    { "auth_http_keepalive", &t_int, SRVSCOPE, "0", "0", S(auth_http_keepalive),
      0, 1024, 0, 0 },
    { "imap_auth", &t_methods, SRVSCOPE, "[\"plain\"]", "[\"plain\"]",
      S(imap_auth), 0, 0, 0,
      AUTH_M_PLAIN | AUTH_M_LOGIN | AUTH_M_CRAM_MD5 | AUTH_M_EXTERNAL },
    { "pop3_auth", &t_methods, SRVSCOPE, "[\"plain\"]", "[\"plain\"]",
      S(pop3_auth), 0, 0, 0,
      AUTH_M_PLAIN | AUTH_M_APOP | AUTH_M_CRAM_MD5 | AUTH_M_EXTERNAL },
    { "smtp_auth", &t_methods, SRVSCOPE, "[\"plain\", \"login\"]",
      "[\"plain\", \"login\"]", S(smtp_auth), 0, 0, 0,
      AUTH_M_PLAIN | AUTH_M_LOGIN | AUTH_M_CRAM_MD5 | AUTH_M_EXTERNAL
      | AUTH_M_NONE },
    { "auth_file", &t_path, SRVSCOPE, NULL, "unset", S(auth_file), 0, 0,
      CF_OPTIONAL, 0 },

    /* server: protocols */
    { "imap_capabilities", &t_imapcaps, SRVSCOPE,
      "[\"IMAP4\", \"IMAP4rev1\", \"UIDPLUS\"]",
      "[\"IMAP4\", \"IMAP4rev1\", \"UIDPLUS\"]", S(imap_capabilities),
      0, 0, 0, 0 },
    { "imap_client_buffer", &t_size, SRVSCOPE, NULL, "the page size",
      S(imap_client_buffer), 512, 64 << 20, CF_DYNAMIC, 0 },
    { "pop3_capabilities", &t_pop3caps, SRVSCOPE,
      "[\"TOP\", \"USER\", \"UIDL\"]", "[\"TOP\", \"USER\", \"UIDL\"]",
      S(pop3_capabilities), 0, 0, 0, 0 },
    { "smtp_capabilities", &t_smtpcaps, SRVSCOPE, "[]", "empty",
      S(smtp_capabilities), 0, 0, 0, 0 },
    { "smtp_client_buffer", &t_size, SRVSCOPE, NULL, "the page size",
      S(smtp_client_buffer), 512, 64 << 20, CF_DYNAMIC, 0 },
    { "smtp_greeting_delay", &t_time, SRVSCOPE, "0", "0",
      S(smtp_greeting_delay), 0, TMAX, 0, 0 },

    /* server: proxy */
    { "proxy", &t_compat, SRVSCOPE, "true", "true", S(proxy), 0, 0, 0, 0 },
    { "proxy_buffer", &t_size, SRVSCOPE, NULL, "the page size",
      S(proxy_buffer), 512, 64 << 20, CF_DYNAMIC, 0 },
    { "proxy_pass_error_message", &t_flag, SRVSCOPE, "false", "false",
      S(proxy_pass_error_message), 0, 0, 0, 0 },
    { "proxy_timeout", &t_time, SRVSCOPE, "\"24h\"", "24h", S(proxy_timeout),
      1, TMAX, 0, 0 },
    { "proxy_protocol", &t_flag, SRVSCOPE, "false", "false",
      S(proxy_protocol), 0, 0, 0, 0 },
    { "proxy_smtp_auth", &t_flag, SRVSCOPE, "false", "false",
      S(proxy_smtp_auth), 0, 0, 0, 0 },
    { "xclient", &t_flag, SRVSCOPE, "true", "true", S(xclient), 0, 0, 0, 0 },

    /* server: TLS */
    { "ssl", &t_sslflag, SRVSCOPE, "false", "false", S(ssl), 0, 0, 0, 0 },
    { "starttls", &t_enum, SRVSCOPE, "\"off\"", "off", S(starttls),
      0, 0, 0, 0 },
    { "ssl_certificate", &t_pathlist, SRVSCOPE, NULL,
      "required where TLS is used", S(ssl_certificate), 0, 0, CF_OPTIONAL,
      0 },
    { "ssl_certificate_key", &t_pathlist, SRVSCOPE, NULL,
      "required where TLS is used", S(ssl_certificate_key), 0, 0,
      CF_OPTIONAL, 0 },
    { "ssl_password_file", &t_path, SRVSCOPE, NULL, "unset",
      S(ssl_password_file), 0, 0, CF_OPTIONAL, 0 },
    { "ssl_protocols", &t_protocols, SRVSCOPE, "[\"TLSv1.2\", \"TLSv1.3\"]",
      "[\"TLSv1.2\", \"TLSv1.3\"]", S(ssl_protocols), 0, 0, 0, 0 },
    { "ssl_ciphers", &t_string, SRVSCOPE, "\"HIGH:!aNULL:!MD5\"",
      "HIGH:!aNULL:!MD5", S(ssl_ciphers), 0, 0, 0, 0 },
    { "ssl_priority", &t_string, SRVSCOPE, NULL, "unset", S(ssl_priority),
      0, 0, CF_OPTIONAL, 0 },
    { "ssl_prefer_server_ciphers", &t_flag, SRVSCOPE, "false", "false",
      S(ssl_prefer_server_ciphers), 0, 0, 0, 0 },
    { "ssl_dhparam", &t_path, SRVSCOPE, NULL, "unset", S(ssl_dhparam),
      0, 0, CF_OPTIONAL, 0 },
    { "ssl_ecdh_curve", &t_string, SRVSCOPE, "\"auto\"", "auto",
      S(ssl_ecdh_curve), 0, 0, 0, 0 },
    { "ssl_session_cache", &t_cache, SRVSCOPE, "\"none\"", "none",
      S(ssl_session_cache), 0, 0, 0, 0 },
    { "ssl_session_timeout", &t_time_sec, SRVSCOPE, "\"5m\"", "5m",
      S(ssl_session_timeout), 1000, (long long)INT_MAX * 1000, CF_UNIT_SEC, 0 },
    { "ssl_session_tickets", &t_flag, SRVSCOPE, "true", "true",
      S(ssl_session_tickets), 0, 0, 0, 0 },
    { "ssl_session_ticket_key", &t_pathlist, SRVSCOPE, NULL, "unset",
      S(ssl_session_ticket_key), 0, 0, CF_OPTIONAL, 0 },
    { "ssl_verify_client", &t_enum, SRVSCOPE, "\"off\"", "off",
      S(ssl_verify_client), 0, 0, 0, 0 },
    { "ssl_verify_depth", &t_int, SRVSCOPE, "1", "1", S(ssl_verify_depth),
      0, 100, 0, 0 },
    { "ssl_client_certificate", &t_path, SRVSCOPE, NULL, "unset",
      S(ssl_client_certificate), 0, 0, CF_OPTIONAL, 0 },
    { "ssl_trusted_certificate", &t_path, SRVSCOPE, NULL, "unset",
      S(ssl_trusted_certificate), 0, 0, CF_OPTIONAL, 0 },
    { "ssl_crl", &t_path, SRVSCOPE, NULL, "unset", S(ssl_crl), 0, 0,
      CF_OPTIONAL, 0 },
    { "ssl_conf_command", &t_openssl, SRVSCOPE, NULL, "none: an error",
      NOFIELD, 0, 0, 0, 0 },
};

const size_t conf_nsettings = sizeof(conf_settings) / sizeof(conf_settings[0]);

/* The row of a setting, or NULL for an unknown name. */
const struct conf_setting *
conf_setting_find(const char *name)
{
    for (size_t i = 0; i < conf_nsettings; i++) {
        if (strcmp(conf_settings[i].name, name) == 0) {
            return &conf_settings[i];
        }
    }
    return NULL;
}
