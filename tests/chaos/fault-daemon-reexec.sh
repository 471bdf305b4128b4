#!/usr/bin/env bash
# systemctl daemon-reexec, three times, while gear installs, starts and stops: PID 1
# re-executes itself and drops off the bus for a moment each time.
source "$(dirname "$0")/lib.sh"
chaos_begin
tbsh 'for i in 1 2 3; do systemctl daemon-reexec; sleep 1.5; done'
chaos_end "systemctl daemon-reexec (3 in 5 s)"
