#!/usr/bin/env bash
# dockerd killed (kill -9) while gear installs, starts and stops: systemd restarts Docker,
# and every started container runs again.
source "$(dirname "$0")/lib.sh"
chaos_begin
tbsh 'kill -9 $(systemctl show -P MainPID docker.service)'
# 45 s: see "Known limits" in docs/reliability.md (the container units hold up Docker's restart).
chaos_end "dockerd killed (kill -9)" 45
