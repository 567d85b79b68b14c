#!/usr/bin/env bash
# Installs Debian's chromium (and chromium-driver) for the browser tests when it is missing.
# Needs root (or sudo) and apt; the browser tests drive /usr/bin/chromium through Playwright, which never
# downloads a browser of its own.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-browser: chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a parallel setup step) may hold the lock: wait for it rather than fail.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends chromium chromium-driver
