#!/usr/bin/env bash
# Starts Scene2Video on a fresh machine: the Python packages in a virtual environment (the active one, else
# the project's .venv: scripts/venv.sh), system ffmpeg where apt can install it (for the live streaming
# preview; without it the finished video is still shown), then the app.
# Arguments go to app.py, e.g. bash scripts/start.sh --share
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
use_project_python requirements.txt
[ -z "${SCENE2VIDEO_ENV_ONLY:-}" ] || exit 0
if ! { command -v ffmpeg && command -v ffprobe; } >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "note: install ffmpeg (e.g. sudo apt-get install ffmpeg) to watch the video while it renders" >&2
  fi
fi
exec "$PYTHON" app.py "$@"
