#!/usr/bin/env bash
# systemctl daemon-reload, ten times in 5 s, while gear installs, starts and stops.
source "$(dirname "$0")/lib.sh"
chaos_begin
tbsh 'for i in 1 2 3 4 5 6 7 8 9 10; do systemctl daemon-reload; sleep 0.5; done'
chaos_end "systemctl daemon-reload (10 in 5 s)"
