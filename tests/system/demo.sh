#!/bin/bash
# demo.sh — `make demo`: boot the sandbox machine gear-demo (real systemd + Docker) with the
# staged install of gear, show the agent answering, install a container through gear and
# show it serving. The machine stays up for `make shell`; `make demo-down` stops it.
#
#   usage: demo.sh STAGE_DIR        STAGE_DIR is a `make install DESTDIR=` tree
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTBED=$HERE/testbed.sh
M=gear-demo
if [ $# -ne 1 ] || [ ! -d "$1" ]; then sed -n '6p' "$0" | sed 's/^# *//' >&2; exit 2; fi
STAGE=$(cd "$1" && pwd)

in_demo() { "$TESTBED" exec "$M" "$@"; }
show() { echo; echo "\$ $*"; in_demo "$@"; }

"$TESTBED" deps
"$TESTBED" rootfs >/dev/null
"$TESTBED" down "$M" 2>/dev/null || true
"$TESTBED" up "$M" --bridge --stage "$STAGE"
"$TESTBED" images "$M"

echo
echo "=== gear is installed in the sandbox machine '$M'; enabling its socket"
in_demo systemctl daemon-reload
show systemctl enable --now gear-api.socket container-active.target
show systemctl is-active gear-api.socket
echo "(gear-api.service is $(in_demo systemctl is-active gear-api.service || true) until the first connection)"
show curl -sS http://127.0.0.1:43273/containers
show gear list-units localhost

echo
echo "=== a container, installed and started through gear"
show gear install gear-test/httpd:latest localhost/demo --start -p 8080:0
port=$(in_demo curl -fsS http://127.0.0.1:43273/container/demo/ports | sed -n 's/.*"External":\([0-9]*\).*/\1/p')
show curl -sS "http://127.0.0.1:$port/"
show gear status localhost/demo
show gear list-units localhost

cat <<EOT

The sandbox keeps running. Next:
  make shell        a shell inside it (try: gear logs localhost/demo --no-follow)
  make demo-down    stop it and remove everything it used
EOT
