#!/bin/sh
# Install everything postern's build and tests need on Debian 12 (bookworm).
# Idempotent: run it as often as you like.  Needs root (or sudo).
#
# The Dovecot and Postfix packages are only used as throwaway test backends
# started by the tests themselves; their system services are kept from
# starting here (policy-rc.d), and are stopped if they were running.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -E "$0" "$@"
    fi
    echo "$0: must be run as root" >&2
    exit 1
fi

PACKAGES="build-essential autoconf automake libtool pkg-config
    libgnutls28-dev libconfig-dev libc-ares-dev libcrypt-dev
    dovecot-imapd dovecot-pop3d dovecot-lmtpd postfix
    python3 python3-pytest curl swaks gnutls-bin openssl valgrind clang systemd
    logrotate
    libnss-wrapper
    nginx libnginx-mod-mail"

missing=
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "setup-debian: all packages present"
else
    echo "setup-debian: installing:$missing"
    # keep the package scripts from starting dovecot/postfix services
    policy=/usr/sbin/policy-rc.d
    added_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        added_policy=yes
    fi
    trap 'if [ "$added_policy" = yes ]; then rm -f "$policy"; fi' EXIT
    echo "postfix postfix/main_mailer_type select No configuration" |
        debconf-set-selections
    apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        $missing
fi

# The system's own services must not hold the usual ports or get in the way
# of the tests' private instances (no-ops without systemd or when stopped).
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for s in dovecot postfix; do
        systemctl disable --now "$s" >/dev/null 2>&1 || true
    done
fi
exit 0
