#!/usr/bin/env bash
# The system bus restarted (systemctl restart dbus) while gear installs, starts and stops:
# the agent and the idler reconnect by themselves.
source "$(dirname "$0")/lib.sh"
chaos_begin
tb systemctl restart dbus.service
chaos_end "D-Bus restarted"
