#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine, then runs every test.
# System packages: ffmpeg/ffprobe (Gradio's streaming video) and Chromium (browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v chromium >/dev/null || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "warning: please install ${need_apt[*]} (apt-get install ${need_apt[*]}); related tests will be skipped" >&2
  fi
fi

python3 -m pip install -q -r requirements-dev.txt
# Never 'playwright install': the browser tests drive the system's /usr/bin/chromium.
python3 -m pytest "$@"
