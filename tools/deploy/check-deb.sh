#!/usr/bin/env bash
# Builds the .deb with cargo-deb, installs it on this machine with dpkg -i, checks what it
# installed, then purges it again (KEEP_INSTALLED=1 keeps it). Run as root on a Debian machine;
# CI runs it from .ci/run. Works without systemd running (a container): the package's
# maintainer scripts only talk to systemd when /run/systemd/system exists.
#
#   tools/deploy/check-deb.sh                 # cargo install cargo-deb if missing, cargo deb, check
#   DEB=path/to.deb tools/deploy/check-deb.sh # check a .deb built elsewhere
#
# Checks: dpkg -i succeeds; /usr/bin/rtmp-edge answers --help and --check-config on the
# packaged /etc/rtmp-edge/rtmp-edge.toml, which dpkg lists as a conffile; every key commented
# out in that file is a real key with a valid value; the unit is installed and passes
# `systemd-analyze verify` (skipped, saying so, when systemd-analyze is not installed); the
# installed binary, run as an unprivileged user with only CAP_NET_BIND_SERVICE on a port below
# 1024, serves /healthz with the packaged config and drains and exits 0 on SIGTERM;
# dpkg -P leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ "$(id -u)" -eq 0 ] || { echo "check-deb: run as root (dpkg -i)" >&2; exit 1; }
if dpkg-query -W -f='${Status}' rtmp-edge 2>/dev/null | grep -q ' installed'; then
  echo "check-deb: rtmp-edge is already installed here; not touching it" >&2
  exit 1
fi

if [ -z "${DEB:-}" ]; then
  if ! cargo deb --version >/dev/null 2>&1; then
    echo "check-deb: installing cargo-deb"
    start=$SECONDS
    cargo install cargo-deb --locked --quiet
    echo "check-deb: cargo-deb installed in $((SECONDS - start)) s"
  fi
  start=$SECONDS
  # cargo deb prints the path of the .deb it wrote as its last line.
  DEB=$(cargo deb | tail -n 1)
  echo "check-deb: built $DEB in $((SECONDS - start)) s"
fi
[ -f "$DEB" ] || { echo "check-deb: no such .deb: $DEB" >&2; exit 1; }

work=$(mktemp -d)
server=""
cleanup() {
  [ -n "$server" ] && kill -KILL "$server" 2>/dev/null
  rm -rf "$work"
  if [ "${KEEP_INSTALLED:-0}" != 1 ]; then dpkg -P rtmp-edge >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }

dpkg -i "$DEB"
conf=/etc/rtmp-edge/rtmp-edge.toml
bin=/usr/bin/rtmp-edge
[ -x "$bin" ] || fail "$bin not installed"
"$bin" --help | grep -q -- '--check-config' || fail "$bin --help"
"$bin" --check-config "$conf" || fail "--check-config $conf"
dpkg-query -W -f='${Conffiles}\n' rtmp-edge | grep -q "^ $conf " || fail "$conf is not a conffile"

# The commented-out defaults must stay real keys with valid values.
sed -e 's/^#\([a-z_]* = \)/\1/' -e 's/^#\(\[\[relay\.push\]\]\)/\1/' "$conf" > "$work/uncommented.toml"
"$bin" --check-config "$work/uncommented.toml" >/dev/null || fail "a commented-out key in $conf"

unit=""
for dir in /lib/systemd/system /usr/lib/systemd/system; do
  [ -f "$dir/rtmp-edge.service" ] && unit="$dir/rtmp-edge.service" && break
done
[ -n "$unit" ] || fail "rtmp-edge.service not installed"
grep -q "^ExecStart=$bin --config $conf\$" "$unit" || fail "ExecStart in $unit"
if command -v systemd-analyze >/dev/null; then
  # verify exits 0 on unknown keys and bad values (it only warns): any output is a failure.
  verified=$(systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify $unit: $verified"
  [ -z "$verified" ] || fail "systemd-analyze verify $unit: $verified"
  echo "check-deb: systemd-analyze verify $unit: ok"
else
  echo "check-deb: systemd-analyze not installed: the unit file was NOT verified"
fi

# The packaged binary and config serve, and a SIGTERM with no clients exits 0 at once. As in
# the unit: an unprivileged UID whose only capability is CAP_NET_BIND_SERVICE (ambient and
# bounding), no_new_privs, RTMP on a port below 1024, one worker per core, pinned. (The rest of
# the unit's sandbox needs systemd to run it.)
rtmp_port=$((900 + RANDOM % 100))
http_port=$((20000 + RANDOM % 20000))
as_service=()
if command -v setpriv >/dev/null; then
  as_service=(setpriv --reuid=65534 --regid=65534 --clear-groups --no-new-privs
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service
    --bounding-set=-all,+net_bind_service)
else
  echo "check-deb: setpriv not installed: the server runs as root here"
fi
"${as_service[@]}" "$bin" --config "$conf" --listen "127.0.0.1:$rtmp_port" \
  --http-listen "127.0.0.1:$http_port" 2>"$work/server.log" &
server=$!
healthy=""
for _ in $(seq 50); do
  if { exec 3<>"/dev/tcp/127.0.0.1/$http_port"; } 2>/dev/null; then
    printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
    healthy=$(head -n 1 <&3 || true)
    exec 3<&-
    break
  fi
  sleep 0.1
done
[[ "$healthy" == *" 200 "* ]] || { cat "$work/server.log" >&2; fail "GET /healthz: '$healthy'"; }
kill -TERM "$server"
status=0
wait "$server" || status=$?
server=""
[ "$status" -eq 0 ] || { cat "$work/server.log" >&2; fail "exit status $status after SIGTERM"; }

if [ "${KEEP_INSTALLED:-0}" != 1 ]; then
  dpkg -P rtmp-edge >/dev/null
  left=$(ls -d /etc/rtmp-edge /usr/bin/rtmp-edge "$unit" /etc/systemd/system/rtmp-edge.service \
    /etc/systemd/system/*/rtmp-edge.service 2>/dev/null || true)
  [ -z "$left" ] || fail "left after dpkg -P: $left"
fi
echo "check-deb: ok ($DEB)"
