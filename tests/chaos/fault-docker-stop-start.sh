#!/usr/bin/env bash
# Docker stopped (with its socket, as for maintenance) for 3 s, then started, while gear
# installs, starts and stops: every started container runs again, stopped ones stay down.
source "$(dirname "$0")/lib.sh"
chaos_begin
# Irreversibly: on a busy host, a client of docker.socket would otherwise start Docker
# again at once and cancel the stop.
tb systemctl stop --job-mode=replace-irreversibly docker.socket docker.service
sleep 3
tb systemctl start docker.service
chaos_end "Docker stopped, then started"
