#!/usr/bin/env bash
# Docker restarted (systemctl restart docker) while gear installs, starts and stops.
source "$(dirname "$0")/lib.sh"
chaos_begin
tb systemctl restart docker.service
chaos_end "Docker restarted"
