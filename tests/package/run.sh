#!/usr/bin/env bash
# Checks the Debian package (cargo deb): its files; its binary, unpacked with dpkg-deb -x,
# through a chat round trip; its unit with systemd-analyze verify. With --install (CI only:
# it installs into this machine, and only when no wschat package is there) it also checks
# the maintainer scripts: install enables (and, under a running systemd, starts) the
# service; remove stops it and keeps /var/lib/wschat; purge deletes it.
# Usage: tests/package/run.sh [--install] [PATH.deb]   (default: build the amd64 package)
set -euo pipefail
cd "$(dirname "$0")/../.."

install=no
if [ "${1:-}" = "--install" ]; then install=yes; shift; fi
deb="${1:-}"
if [ -z "$deb" ]; then
    cargo deb -p wschat -- --locked >/dev/null
    deb=$(ls -t target/debian/wschat_*_amd64.deb | head -1)
fi
echo "package: $deb"
tmp=$(mktemp -d)
pid=""
installed=no
made_private=no
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
    # A failed install check leaves nothing behind either.
    if [ "$installed" = yes ]; then
        dpkg -P wschat >/dev/null 2>&1 || true
        rm -rf /var/lib/wschat /var/lib/private/wschat
    fi
    if [ "$made_private" = yes ]; then rmdir /var/lib/private 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Its files.
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/wschat usr/lib/systemd/system/wschat.service etc/default/wschat \
    usr/share/doc/wschat/README.md usr/share/doc/wschat/copyright; do
    [ -f "$root/$f" ] || fail "the package has no /$f"
done
dpkg-deb -f "$deb" Architecture | grep -qx amd64 || fail "not an amd64 package"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/default/wschat \
    || fail "/etc/default/wschat is not a conffile (an upgrade would overwrite it)"
cmp -s <(grep -v '^ExecStart=' contrib/wschat.service) \
    <(grep -v '^ExecStart=' "$root/usr/lib/systemd/system/wschat.service") \
    || fail "the packaged unit is not contrib/wschat.service"

# Its binary, through a chat round trip.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$root/usr/bin/wschat" --bind 127.0.0.1 --port "$port" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do
    grep -q "wschat listening on" "$tmp/log" && break
    sleep 0.1
done
python3 tests/package/round_trip.py "$port" || { cat "$tmp/log"; fail "no chat round trip"; }
kill "$pid"; wait "$pid" || fail "the packaged binary did not exit cleanly on SIGTERM"
pid=""

# Its unit. systemd-analyze resolves ExecStart and the default dependencies (sysinit.target,
# …) inside --root, so the root gets this machine's own units beside the package's.
cp -rn /usr/lib/systemd/system/. "$root/usr/lib/systemd/system/"
if ! systemd-analyze verify --root="$root" /usr/lib/systemd/system/wschat.service \
    >"$tmp/verify" 2>&1 || [ -s "$tmp/verify" ]; then
    cat "$tmp/verify"; fail "systemd-analyze verify complains about the unit"
fi
echo "unit verified; round trip through the packaged binary ok"

[ "$install" = yes ] || exit 0

# The maintainer scripts, for real.
if dpkg-query -W -f='${Status}' wschat 2>/dev/null | grep -q installed; then
    fail "a wschat package is already installed here: not touching it"
fi
state=/var/lib/private/wschat
systemd_up=no
[ -d /run/systemd/system ] && systemd_up=yes
[ -d /var/lib/private ] || made_private=yes
installed=yes
dpkg -i "$deb" >/dev/null 2>&1 || fail "dpkg -i failed"
[ -x /usr/bin/wschat ] || fail "install: no /usr/bin/wschat"
[ -L /etc/systemd/system/multi-user.target.wants/wschat.service ] \
    || fail "install: the service is not enabled"
if [ "$systemd_up" = yes ]; then
    systemctl is-active --quiet wschat || fail "install: the service did not start"
else
    # No systemd running (a container): make the history the service would have written.
    mkdir -p "$state" && ln -sfn private/wschat /var/lib/wschat
    echo '{"room":"lobby"}' >"$state/history.jsonl"
fi
dpkg -r wschat >/dev/null
[ ! -e /usr/bin/wschat ] || fail "remove: /usr/bin/wschat is still there"
if [ "$systemd_up" = yes ]; then
    ! systemctl is-active --quiet wschat || fail "remove: the service still runs"
fi
[ -f "$state/history.jsonl" ] || fail "remove: the history is gone (only purge may delete it)"
[ -f /etc/default/wschat ] || fail "remove: /etc/default/wschat is gone (a conffile stays)"
dpkg -P wschat >/dev/null
installed=no
[ ! -e "$state" ] && [ ! -e /var/lib/wschat ] || fail "purge: the history is still there"
[ ! -e /etc/default/wschat ] || fail "purge: /etc/default/wschat is still there"
[ ! -e /etc/systemd/system/multi-user.target.wants/wschat.service ] \
    || fail "purge: the enable link is still there"
echo "install enables$([ "$systemd_up" = yes ] && echo " and starts"), remove keeps the history, purge deletes it"
