/*
 * tls_cache.c - the TLS session cache behind `ssl_session_cache`: GnuTLS's
 * db store / retrieve / remove callbacks over bounded in-memory caches.
 *
 * A cache is a hash table of entries plus an LRU list; it is bounded by a
 * number of sessions (`builtin:N`) or by bytes (`shared:NAME:SIZE`), and an
 * entry older than `ssl_session_timeout` is never returned (GnuTLS also
 * checks the time stamp inside the session data).  Keys are the server index
 * (8 bytes, big-endian) followed by the session id, so a session resumes
 * only on the `servers` entry that issued it.
 *
 * Handles secrets: session data holds master secrets; entries are wiped when
 * dropped.  Locks: one mutex per cache around every access; a process-wide
 * mutex around the registry of shared caches (taken before a cache's own
 * mutex, never the other way round).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "clock.h"
#include "str.h"
#include "tls_int.h"

#define NBUCKETS 4096
#define ENTRY_OVERHEAD 96       /* bytes counted per entry beyond key+data */
#define MAX_KEY 72              /* 8 bytes of server index + a session id */

struct entry {
    struct entry *hnext;                /* hash chain */
    struct entry *prev, *next;          /* LRU: head newest */
    msec_t expires;
    size_t klen, dlen;
    unsigned char bytes[];              /* key, then data */
};

struct tls_cache {
    pthread_mutex_t lock;
    char *name;                         /* shared: NAME; builtin: NULL */
    size_t max_entries;                 /* 0: no bound by count */
    size_t max_bytes;                   /* 0: no bound by bytes */
    size_t entries, bytes;
    struct entry *head, *tail;
    struct entry *buckets[NBUCKETS];
    int refs;                           /* under registry_lock for shared */
    struct tls_cache *reg_next;         /* registry of shared caches */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cache *registry;

/* FNV-1a over the key. */
static size_t
hash(const unsigned char *p, size_t len)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h % NBUCKETS;
}

/* A new empty cache; NULL on ENOMEM. */
static struct tls_cache *
cache_new(const char *name, size_t max_entries, size_t max_bytes)
{
    struct tls_cache *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    if (name != NULL && (c->name = strdup(name)) == NULL) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max_entries = max_entries;
    c->max_bytes = max_bytes;
    c->refs = 1;
    return c;
}

/* Unlink e from its chain and the LRU list, wipe and free it.  Locked. */
static void
entry_drop(struct tls_cache *c, struct entry *e)
{
    struct entry **pp = &c->buckets[hash(e->bytes, e->klen)];

    while (*pp != NULL && *pp != e) {
        pp = &(*pp)->hnext;
    }
    if (*pp == e) {
        *pp = e->hnext;
    }
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        c->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        c->tail = e->prev;
    }
    c->entries--;
    c->bytes -= e->klen + e->dlen + ENTRY_OVERHEAD;
    mem_wipe(e->bytes, e->klen + e->dlen);
    free(e);
}

/* Find by key.  Locked. */
static struct entry *
entry_find(struct tls_cache *c, const unsigned char *key, size_t klen)
{
    struct entry *e;

    for (e = c->buckets[hash(key, klen)]; e != NULL; e = e->hnext) {
        if (e->klen == klen && memcmp(e->bytes, key, klen) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Drop expired entries from the old end, then the oldest while over a
 * bound (extra: bytes about to be added).  Locked. */
static void
cache_trim(struct tls_cache *c, size_t extra_bytes, size_t extra_entries)
{
    msec_t now = clock_now();

    while (c->tail != NULL && c->tail->expires <= now) {
        entry_drop(c, c->tail);
    }
    while (c->tail != NULL
           && ((c->max_entries && c->entries + extra_entries > c->max_entries)
               || (c->max_bytes && c->bytes + extra_bytes > c->max_bytes))) {
        entry_drop(c, c->tail);
    }
}

/* Wipe and free a cache (no references left). */
static void
cache_free(struct tls_cache *c)
{
    while (c->head != NULL) {
        entry_drop(c, c->head);
    }
    pthread_mutex_destroy(&c->lock);
    free(c->name);
    free(c);
}

/* Drop one reference; the last one frees (shared: leaves the registry). */
static void
cache_unref(struct tls_cache *c)
{
    struct tls_cache **pp;
    int last;

    if (c->name == NULL) {
        cache_free(c);
        return;
    }
    pthread_mutex_lock(&registry_lock);
    last = --c->refs == 0;
    if (last) {
        for (pp = &registry; *pp != NULL; pp = &(*pp)->reg_next) {
            if (*pp == c) {
                *pp = c->reg_next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (last) {
        cache_free(c);
    }
}

/* The shared cache NAME, made or referenced; its size is the latest one
 * configured (a reload may change it).  NULL on ENOMEM. */
static struct tls_cache *
shared_get(const char *name, size_t size)
{
    struct tls_cache *c;

    pthread_mutex_lock(&registry_lock);
    for (c = registry; c != NULL; c = c->reg_next) {
        if (strcmp(c->name, name) == 0) {
            c->refs++;
            pthread_mutex_lock(&c->lock);
            c->max_bytes = size;
            cache_trim(c, 0, 0);
            pthread_mutex_unlock(&c->lock);
            break;
        }
    }
    if (c == NULL) {
        c = cache_new(name, 0, size);
        if (c != NULL) {
            c->reg_next = registry;
            registry = c;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return c;
}

/* Parse "10m", "512k", "4096" into bytes; 0 / -1. */
static int
parse_size(const char *s, size_t *r)
{
    unsigned long long v = 0, mul = 1;
    const char *p = s;

    if (*p < '0' || *p > '9') {
        return -1;
    }
    while (*p >= '0' && *p <= '9') {
        if (v > (1ULL << 40)) {
            return -1;
        }
        v = v * 10 + (unsigned)(*p++ - '0');
    }
    if (*p == 'k' || *p == 'K') {
        mul = 1024;
        p++;
    } else if (*p == 'm' || *p == 'M') {
        mul = 1024 * 1024;
        p++;
    }
    if (*p != '\0' || v == 0) {
        return -1;
    }
    *r = (size_t)(v * mul);
    return 0;
}

/* Add a cache to a set; 0 / -1. */
static int
set_add(struct tls_cache_set *set, struct tls_cache *c, const char *tok,
        char *err, size_t errlen)
{
    if (c == NULL) {
        snprintf(err, errlen, "ssl_session_cache: out of memory");
        return -1;
    }
    if (set->n == TLS_CACHE_MAX_PER_SERVER) {
        cache_unref(c);
        snprintf(err, errlen, "ssl_session_cache: too many caches at \"%s\"",
                 tok);
        return -1;
    }
    set->v[set->n++] = c;
    return 0;
}

/* Apply one token of ssl_session_cache; 0 / -1 with err. */
static int
set_token(struct tls_cache_set *set, const char *tok, int *builtin_seen,
          int *off_seen, char *err, size_t errlen)
{
    char name[128];
    const char *colon;
    size_t n;

    if (strcmp(tok, "off") == 0 || strcmp(tok, "none") == 0) {
        *off_seen = 1;
        return 0;
    }
    if (strcmp(tok, "builtin") == 0 || strncmp(tok, "builtin:", 8) == 0) {
        n = TLS_CACHE_BUILTIN_DEFAULT;
        if (tok[7] == ':' && (parse_size(tok + 8, &n) < 0
                              || strchr(tok + 8, 'k') || strchr(tok + 8, 'm')
                              || strchr(tok + 8, 'K')
                              || strchr(tok + 8, 'M'))) {
            snprintf(err, errlen, "ssl_session_cache: invalid session count "
                     "in \"%s\"", tok);
            return -1;
        }
        if (*builtin_seen) {
            snprintf(err, errlen, "ssl_session_cache: \"builtin\" given "
                     "twice");
            return -1;
        }
        *builtin_seen = 1;
        return set_add(set, cache_new(NULL, n, 0), tok, err, errlen);
    }
    if (strncmp(tok, "shared:", 7) == 0) {
        colon = strrchr(tok + 7, ':');
        if (colon == NULL || colon == tok + 7
            || (size_t)(colon - (tok + 7)) >= sizeof(name)) {
            snprintf(err, errlen, "ssl_session_cache: \"%s\" is not "
                     "shared:NAME:SIZE", tok);
            return -1;
        }
        memcpy(name, tok + 7, (size_t)(colon - (tok + 7)));
        name[colon - (tok + 7)] = '\0';
        if (parse_size(colon + 1, &n) < 0) {
            snprintf(err, errlen, "ssl_session_cache: invalid size in \"%s\"",
                     tok);
            return -1;
        }
        return set_add(set, shared_get(name, n), tok, err, errlen);
    }
    snprintf(err, errlen, "ssl_session_cache: invalid value \"%s\"", tok);
    return -1;
}

/* Build a server's cache set from the tokens (each list item may hold
 * several space-separated tokens). */
int
tls_cache_set_init(struct tls_cache_set *set, const struct strlist *tokens,
                   size_t server_index, int timeout_sec, char *err,
                   size_t errlen)
{
    int builtin_seen = 0, off_seen = 0;
    char tok[256];
    size_t i;

    memset(set, 0, sizeof(*set));
    set->server_index = server_index;
    set->timeout = (msec_t)(timeout_sec > 0 ? timeout_sec : 300) * 1000;
    for (i = 0; tokens != NULL && i < tokens->n; i++) {
        const char *p = tokens->v[i];

        while (*p != '\0') {
            size_t len = strcspn(p, " \t");

            if (len == 0) {
                p++;
                continue;
            }
            if (len >= sizeof(tok)) {
                snprintf(err, errlen, "ssl_session_cache: value too long");
                goto fail;
            }
            memcpy(tok, p, len);
            tok[len] = '\0';
            if (set_token(set, tok, &builtin_seen, &off_seen,
                          err, errlen) < 0) {
                goto fail;
            }
            p += len;
        }
    }
    if (off_seen && set->n > 0) {
        snprintf(err, errlen, "ssl_session_cache: \"off\" or \"none\" "
                 "cannot be combined with a cache");
        goto fail;
    }
    return 0;

fail:
    tls_cache_set_free(set);
    return -1;
}

/* Drop the set's references. */
void
tls_cache_set_free(struct tls_cache_set *set)
{
    size_t i;

    for (i = 0; i < set->n; i++) {
        cache_unref(set->v[i]);
    }
    set->n = 0;
}

/* Build the stored key; 0 / -1 when the id is too long. */
static int
make_key(const struct tls_cache_set *set, gnutls_datum_t key,
         unsigned char *out, size_t *len_r)
{
    int i;

    if (key.size == 0 || key.size > MAX_KEY - 8) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        out[i] = (unsigned char)(set->server_index >> (56 - 8 * i));
    }
    memcpy(out + 8, key.data, key.size);
    *len_r = 8 + key.size;
    return 0;
}

/* gnutls_db_store_func: into every cache of the set. */
int
tls_cache_store(void *ptr, gnutls_datum_t key, gnutls_datum_t data)
{
    struct tls_cache_set *set = ptr;
    unsigned char k[MAX_KEY];
    size_t klen, i, cost;
    struct entry *e, *old;
    int stored = 0;

    if (make_key(set, key, k, &klen) < 0 || data.size == 0
        || data.size > TLS_CACHE_MAX_ENTRY) {
        return -1;
    }
    cost = klen + data.size + ENTRY_OVERHEAD;
    for (i = 0; i < set->n; i++) {
        struct tls_cache *c = set->v[i];

        e = malloc(sizeof(*e) + klen + data.size);
        if (e == NULL) {
            continue;
        }
        pthread_mutex_lock(&c->lock);
        if (c->max_bytes && cost > c->max_bytes) {
            pthread_mutex_unlock(&c->lock);
            free(e);
            continue;
        }
        old = entry_find(c, k, klen);
        if (old != NULL) {
            entry_drop(c, old);
        }
        cache_trim(c, cost, 1);
        e->klen = klen;
        e->dlen = data.size;
        memcpy(e->bytes, k, klen);
        memcpy(e->bytes + klen, data.data, data.size);
        e->expires = clock_now() + set->timeout;
        e->hnext = c->buckets[hash(k, klen)];
        c->buckets[hash(k, klen)] = e;
        e->prev = NULL;
        e->next = c->head;
        if (c->head != NULL) {
            c->head->prev = e;
        } else {
            c->tail = e;
        }
        c->head = e;
        c->entries++;
        c->bytes += cost;
        pthread_mutex_unlock(&c->lock);
        stored = 1;
    }
    return stored ? 0 : -1;
}

/* gnutls_db_retr_func: the first cache that has it (a gnutls_malloc'd
 * copy, which GnuTLS frees). */
gnutls_datum_t
tls_cache_retrieve(void *ptr, gnutls_datum_t key)
{
    struct tls_cache_set *set = ptr;
    gnutls_datum_t r = { NULL, 0 };
    unsigned char k[MAX_KEY];
    size_t klen, i;
    struct entry *e;

    if (make_key(set, key, k, &klen) < 0) {
        return r;
    }
    for (i = 0; i < set->n && r.data == NULL; i++) {
        struct tls_cache *c = set->v[i];

        pthread_mutex_lock(&c->lock);
        e = entry_find(c, k, klen);
        if (e != NULL && e->expires <= clock_now()) {
            entry_drop(c, e);
            e = NULL;
        }
        if (e != NULL && (r.data = gnutls_malloc(e->dlen)) != NULL) {
            memcpy(r.data, e->bytes + e->klen, e->dlen);
            r.size = (unsigned)e->dlen;
        }
        pthread_mutex_unlock(&c->lock);
    }
    return r;
}

/* gnutls_db_remove_func: from every cache. */
int
tls_cache_remove(void *ptr, gnutls_datum_t key)
{
    struct tls_cache_set *set = ptr;
    unsigned char k[MAX_KEY];
    size_t klen, i;
    struct entry *e;
    int found = 0;

    if (make_key(set, key, k, &klen) < 0) {
        return -1;
    }
    for (i = 0; i < set->n; i++) {
        pthread_mutex_lock(&set->v[i]->lock);
        e = entry_find(set->v[i], k, klen);
        if (e != NULL) {
            entry_drop(set->v[i], e);
            found = 1;
        }
        pthread_mutex_unlock(&set->v[i]->lock);
    }
    return found ? 0 : -1;
}

/* Install the callbacks on a server session. */
void
tls_cache_set_attach(struct tls_cache_set *set, gnutls_session_t s)
{
    if (set->n == 0) {
        return;
    }
    gnutls_db_set_retrieve_function(s, tls_cache_retrieve);
    gnutls_db_set_store_function(s, tls_cache_store);
    gnutls_db_set_remove_function(s, tls_cache_remove);
    gnutls_db_set_ptr(s, set);
}

/* Counters for tests. */
void
tls_cache_stats(struct tls_cache *c, size_t *entries_r, size_t *bytes_r)
{
    pthread_mutex_lock(&c->lock);
    *entries_r = c->entries;
    *bytes_r = c->bytes;
    pthread_mutex_unlock(&c->lock);
}
