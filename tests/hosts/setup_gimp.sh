#!/bin/sh
# Set up (once) a Debian 13 "trixie" chroot holding GIMP 3 with Python plug-in support, for tests/hosts/test_gimp.py.
#
# Idempotent and cached: a finished chroot is marked with a stamp file and reused; a half-built one (an
# interrupted run) is thrown away and rebuilt. Time-bounded: every network step runs under `timeout`.
# Exit status: 0 ready, 3 Debian 13 could not be reached (the test then skips), other = a real failure.
#
#   AI_PORTRAIT_GIMP_CHROOT   where the chroot lives (default /var/cache/ai-portrait/gimp-trixie)
#   AI_PORTRAIT_DEBIAN_MIRROR Debian mirror (default http://deb.debian.org/debian)
set -eu

DIR="${AI_PORTRAIT_GIMP_CHROOT:-/var/cache/ai-portrait/gimp-trixie}"
MIRROR="${AI_PORTRAIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STAMP="$DIR/.ai-portrait-ready"
# GIMP 3 with Python; Xvfb so the GUI (and the plug-in's dialogs) can run headless too, and xdotool to press
# Ctrl+Z in it (a plug-in cannot undo through the PDB).
PACKAGES="gimp python3-numpy xvfb xauth xdotool"
RECIPE="v3 $PACKAGES"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && [ -x "$DIR/usr/bin/gimp-console-3.0" ]; then
    echo "setup_gimp: cached chroot ready at $DIR"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "setup_gimp: needs root (debootstrap and chroot)" >&2
    exit 3
fi

mkdir -p "$(dirname "$DIR")"
# One builder at a time: parallel CI jobs on the same machine wait for each other instead of colliding.
exec 9>"$DIR.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 900 9 || { echo "setup_gimp: timed out waiting for another setup" >&2; exit 1; }
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ] && [ -x "$DIR/usr/bin/gimp-console-3.0" ]; then
    echo "setup_gimp: chroot built by a concurrent run, ready at $DIR"
    exit 0
fi

# A finished chroot from an older recipe: add what is missing instead of rebuilding it.
if [ -f "$STAMP" ] && [ -x "$DIR/usr/bin/gimp-console-3.0" ]; then
    echo "setup_gimp: updating the cached chroot's packages ($PACKAGES)"
    if timeout 600 chroot "$DIR" /usr/bin/env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
            sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES \
                   && apt-get clean" >"$DIR.apt.log" 2>&1; then
        echo "$RECIPE" >"$STAMP"
        echo "setup_gimp: ready at $DIR"
        exit 0
    fi
    tail -n 20 "$DIR.apt.log" >&2
    echo "setup_gimp: updating failed; rebuilding the chroot" >&2
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "setup_gimp: installing debootstrap"
    timeout 300 apt-get update -qq || { echo "setup_gimp: apt-get update failed" >&2; exit 3; }
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq debootstrap \
        || { echo "setup_gimp: cannot install debootstrap" >&2; exit 3; }
fi

# Debootstrap needs trixie's script; older debootstrap releases link it to 'sid'.
if [ ! -e /usr/share/debootstrap/scripts/trixie ] && [ -e /usr/share/debootstrap/scripts/sid ]; then
    ln -s sid /usr/share/debootstrap/scripts/trixie
fi

WORK="$DIR.partial"
rm -rf "$WORK"
echo "setup_gimp: debootstrap trixie into $WORK (about a minute)"
if ! timeout 900 debootstrap --variant=minbase trixie "$WORK" "$MIRROR" >"$DIR.debootstrap.log" 2>&1; then
    tail -n 20 "$DIR.debootstrap.log" >&2
    echo "setup_gimp: debootstrap of Debian 13 failed (mirror $MIRROR unreachable?)" >&2
    rm -rf "$WORK"
    exit 3
fi

# Inside the chroot only the Debian archive is needed; no mounts (apt works without /proc here).
echo "setup_gimp: installing $PACKAGES in the chroot"
if ! timeout 900 chroot "$WORK" /usr/bin/env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
        sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES \
               && apt-get clean" >"$DIR.apt.log" 2>&1; then
    tail -n 20 "$DIR.apt.log" >&2
    echo "setup_gimp: installing GIMP 3 in the chroot failed" >&2
    rm -rf "$WORK"
    exit 3
fi
if [ ! -x "$WORK/usr/bin/gimp-console-3.0" ]; then
    echo "setup_gimp: gimp-console-3.0 missing after install" >&2
    rm -rf "$WORK"
    exit 1
fi

rm -rf "$DIR"
mv "$WORK" "$DIR"
echo "$RECIPE" >"$STAMP"
echo "setup_gimp: ready at $DIR ($(chroot "$DIR" gimp-console-3.0 --version 2>/dev/null | head -n 1))"
