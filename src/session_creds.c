/*
 * session_creds.c - the credentials of a session's current login attempt:
 * heap copies, wiped when replaced or forgotten.  Apart from session.c so
 * that the protocol unit tests link the real functions without the rest
 * of the session machinery.  No locks: a session has one owner.
 */
#include "session.h"
#include "str.h"

/* Set the credentials of this attempt. */
int
session_set_creds(struct session *s, enum auth_method m, struct str login,
                  struct str passwd, struct str salt)
{
    s->method = m;
    if (str_set(&s->login, login) != 0 || str_set(&s->passwd, passwd) != 0
        || (salt.data != NULL && str_set(&s->salt, salt) != 0)) {
        session_clear_creds(s);
        return -1;
    }
    return 0;
}

/* Forget the attempt: nothing of it survives into the next one. */
void
session_clear_creds(struct session *s)
{
    str_wipe_free(&s->login);
    str_wipe_free(&s->passwd);
    str_wipe_free(&s->salt);
    s->method = AUTH_METHOD_PLAIN;
}
