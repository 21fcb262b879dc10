#!/usr/bin/env bash
# Starts Scene2Video on a fresh machine: system ffmpeg where apt can install it (for the live
# streaming preview; without it the finished video is still shown), the Python packages, then the app.
# Arguments go to app.py, e.g. bash scripts/start.sh --share
set -euo pipefail
cd "$(dirname "$0")/.."
if ! { command -v ffmpeg && command -v ffprobe; } >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "note: install ffmpeg (e.g. sudo apt-get install ffmpeg) to watch the video while it renders" >&2
  fi
fi
python3 -m pip install -q -r requirements.txt
exec python3 app.py "$@"
