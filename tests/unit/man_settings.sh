#!/bin/sh
# man_settings.sh - the settings table (src/conf_table.c), the man page
# (man/postern.conf.5) and the example (etc/postern.conf) agree:
#   - every setting of the table has a .TP/.B entry in SETTINGS of the man
#     page, and every such entry is a setting of the table;
#   - every setting the example names (set or commented out) exists;
#   - the example loads (its /etc/postern/ files replaced by test files),
#     and its `postern -T` output loads again;
#   - the built postern(8) names real paths, not @sysconfdir@.
# Prints TAP.  Uses the helper tests/unit/conf_check.

LC_ALL=C
export LC_ALL
srcdir=${POSTERN_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${POSTERN_BUILDDIR:-$(pwd)}
check="$builddir/tests/unit/conf_check"
man="$srcdir/man/postern.conf.5"
example="$srcdir/etc/postern.conf"

n=0
failed=0
ok() {    # ok STATUS NAME
    n=$((n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        failed=$((failed + 1))
    fi
}

if [ ! -x "$check" ]; then
    echo "Bail out! $check not built"
    exit 1
fi
tmp=$(mktemp -d /tmp/postern-man-settings.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT

"$check" names | sort -u > "$tmp/table"
ok $? "conf_check names"

# .TP followed by .B NAME, between ".SH SETTINGS" and the next .SH
awk '
    /^\.SH/ { in_settings = ($0 ~ /^\.SH "?SETTINGS"?$/) }
    in_settings && prev == ".TP" && /^\.B / { print $2 }
    { prev = $0 }
' "$man" | sort -u > "$tmp/man"
[ -s "$tmp/man" ]
ok $? "the man page has setting entries"

for name in $(comm -23 "$tmp/table" "$tmp/man"); do
    echo "# in the table but not in postern.conf(5): $name"
done
[ -z "$(comm -23 "$tmp/table" "$tmp/man")" ]
ok $? "every setting of the table is documented in postern.conf(5)"

for name in $(comm -13 "$tmp/table" "$tmp/man"); do
    echo "# in postern.conf(5) but not in the table: $name"
done
[ -z "$(comm -13 "$tmp/table" "$tmp/man")" ]
ok $? "every setting documented in postern.conf(5) is in the table"

# names the example sets or shows commented out: "name = ..." lines
sed -n 's/^[[:space:]#]*\([a-z][a-z0-9_]*\)[[:space:]]*=.*/\1/p' \
    "$example" | sort -u > "$tmp/example"
[ -s "$tmp/example" ]
ok $? "the example sets settings"
for name in $(comm -13 "$tmp/table" "$tmp/example"); do
    echo "# in etc/postern.conf but not in the table: $name"
done
[ -z "$(comm -13 "$tmp/table" "$tmp/example")" ]
ok $? "every setting named in etc/postern.conf is in the table"

# The example with its files under $tmp: a test certificate (valid until
# 2126) and key, and a user table; its `user` (which the administrator
# creates, and which loading looks up as root) becomes nobody.
sed -e "s#/etc/postern/#$tmp/#g" \
    -e 's#^user = "postern";#user = "nobody";#' "$example" > "$tmp/postern.conf"
grep -q '^user = "nobody";' "$tmp/postern.conf"
ok $? "the example's user line is where this test expects it"
cat > "$tmp/mail.pem" <<'EOF'
-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIBATAKBggqhkjOPQQDAjAXMRUwEwYDVQQDEwxwb3N0ZXJu
IHRlc3QwIBcNMjYxMTIxMDYxMjI5WhgPMjEyNjEwMjgwNjEyMjlaMBcxFTATBgNV
BAMTDHBvc3Rlcm4gdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABINJ0Dft
EY5DT9e7qUyY1C3tZw7d3AgbJ6LDYC0Bb05ogttPE1h1kscG5yc5gAubmbk990qw
UcjBqpfQ+loGb8yjajBoMAwGA1UdEwEB/wQCMAAwFAYDVR0RBA0wC4IJbG9jYWxo
b3N0MBMGA1UdJQQMMAoGCCsGAQUFBwMBMA4GA1UdDwEB/wQEAwIHgDAdBgNVHQ4E
FgQUJrKLT2PmkgO4y32GYVpSvK51in8wCgYIKoZIzj0EAwIDRwAwRAIgcD93DAxy
MJNRZAbOt1JD/5rFdLK0hyW+ZYvys84KxtICIG2y3GN8nQjc/DHSP+juBG5bTgX0
6Jj/NWscyKWXhy5k
-----END CERTIFICATE-----
EOF
cat > "$tmp/mail.key" <<'EOF'
-----BEGIN EC PRIVATE KEY-----
MHgCAQEEIQD7MywAPuHEMuouZJV1BIWZQ1nxfovYr1X40Kx2NofSo6AKBggqhkjO
PQMBB6FEA0IABINJ0DftEY5DT9e7qUyY1C3tZw7d3AgbJ6LDYC0Bb05ogttPE1h1
kscG5yc5gAubmbk990qwUcjBqpfQ+loGb8w=
-----END EC PRIVATE KEY-----
EOF
printf '%s\n' '# test users' 'alice {PLAIN}secret 10.0.0.5' \
    'bob {PLAIN}hunter2 10.0.0.5:1143 bob@example.com' > "$tmp/users"

"$check" load "$tmp/postern.conf" 2> "$tmp/load.err"
st=$?
sed 's/^/# /' "$tmp/load.err"
ok $st "etc/postern.conf loads"

"$check" dump "$tmp/postern.conf" > "$tmp/dump.conf" 2> "$tmp/dump.err"
ok $? "etc/postern.conf dumps (postern -T)"
grep -q 'listen = \[ "587" \];' "$tmp/dump.conf" \
    && grep -q 'protocol = "smtp";' "$tmp/dump.conf" \
    && grep -q 'starttls = "only";' "$tmp/dump.conf"
ok $? "the dump has the submission server with STARTTLS"
[ "$(grep -c '^        {' "$tmp/dump.conf")" -eq 5 ]
ok $? "the dump has five servers (IMAP 143 993, POP3 110 995, SMTP 587)"
"$check" load "$tmp/dump.conf" 2> "$tmp/reload.err"
st=$?
sed 's/^/# /' "$tmp/reload.err"
ok $st "the dump loads again"

# postern(8) as built: configure's paths filled in, no @name@ left
if [ -f "$builddir/man/postern.8" ]; then
    grep -n '@[a-z]*@' "$builddir/man/postern.8" | sed 's/^/# left: /'
    ! grep -q '@[a-z]*@' "$builddir/man/postern.8"
    ok $? "postern(8) has its paths filled in"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
