#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (the HTML report is opened
# in a real headless browser). Never downloads a browser of its own.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "install-chromium: /usr/bin/chromium is missing; run 'apt-get install -y chromium' as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing chromium from Debian packages..." >&2
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
[ -x /usr/bin/chromium ] || { echo "install-chromium: chromium did not install" >&2; exit 1; }
