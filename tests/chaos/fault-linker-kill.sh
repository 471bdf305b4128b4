#!/usr/bin/env bash
# gear-linker killed (SIGKILL) at random points, before or after it applied a container's
# link rules, for 8 s, while containers with network links are installed, linked, started
# and stopped. The linker runs for milliseconds, too fast to catch from outside, so for the
# fault it is wrapped: each run, at random, dies before linking, dies after, or links.
source "$(dirname "$0")/lib.sh"
linker=/usr/libexec/gear/gear-linker
chaos_begin
tbsh "mv $linker $linker.real && cat > $linker <<'W' && chmod 755 $linker
#!/bin/sh
case \$(( \$(od -An -N1 -tu1 /dev/urandom) % 3 )) in
  0) kill -9 \$\$ ;;
  1) $linker.real \"\$@\"; kill -9 \$\$ ;;
esac
exec $linker.real \"\$@\"
W"
sleep 8
tbsh "mv $linker.real $linker"
chaos_end "gear-linker killed (random points, 8 s)"
