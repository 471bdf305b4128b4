#!/usr/bin/env bash
# gear-step (the container units' steps around `docker run`: prepare, started, remove)
# killed (SIGKILL) at random points for 8 s, before or after it did its work, while
# containers with network links are installed, linked, started and stopped. A step runs
# for milliseconds, too fast to catch from outside, so for the fault it is wrapped: each
# run, at random, dies before its work, dies after it, or does it.
source "$(dirname "$0")/lib.sh"
step=/usr/libexec/gear/gear-step
chaos_begin
tbsh "mv $step $step.real && cat > $step <<'W' && chmod 755 $step
#!/bin/sh
case \$(( \$(od -An -N1 -tu1 /dev/urandom) % 3 )) in
  0) kill -9 \$\$ ;;
  1) $step.real \"\$@\"; kill -9 \$\$ ;;
esac
exec $step.real \"\$@\"
W"
sleep 8
tbsh "mv $step.real $step"
chaos_end "gear-step killed (random points, 8 s)"
