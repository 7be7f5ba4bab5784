#!/bin/sh
# Make sure real Krita 5 (with Python scripting), a virtual X server and numpy for Krita's Python are present,
# for tests/hosts/test_krita.py. Idempotent: installs only what is missing. Time-bounded network steps.
# Exit status: 0 ready, 3 Krita could not be installed here (the test then skips), other = a real failure.
set -eu

missing=""
command -v krita >/dev/null 2>&1 || missing="$missing krita"
command -v kritarunner >/dev/null 2>&1 || missing="$missing krita"
command -v xvfb-run >/dev/null 2>&1 || missing="$missing xvfb"
command -v xauth >/dev/null 2>&1 || missing="$missing xauth"
/usr/bin/python3 -c "import numpy" >/dev/null 2>&1 || missing="$missing python3-numpy"
/usr/bin/python3 -c "import PyQt5.QtCore" >/dev/null 2>&1 || missing="$missing python3-pyqt5"

if [ -z "$missing" ]; then
    echo "setup_krita: krita, xvfb, xauth, python3-numpy, python3-pyqt5 present"
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_krita: missing:$missing (needs root and apt-get to install)" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
echo "setup_krita: installing$missing"
timeout 600 apt-get update -q || { echo "setup_krita: apt-get update failed" >&2; exit 3; }
# shellcheck disable=SC2086 # word splitting of the package list is intended
timeout 1200 apt-get install -y -q krita xvfb xauth python3-numpy python3-pyqt5 || {
    echo "setup_krita: apt-get install failed" >&2; exit 3; }
command -v kritarunner >/dev/null 2>&1 || { echo "setup_krita: kritarunner still missing" >&2; exit 3; }
echo "setup_krita: ready"
