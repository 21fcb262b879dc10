#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine, then runs every test.
# Python packages: requirements-dev.txt in a virtual environment (the active one, else the project's .venv:
# scripts/venv.sh).
# System packages: ffmpeg/ffprobe (Gradio's streaming video), Chromium (browser tests) and
# Noto CJK (placeholder frames for CJK prompts; the paths are pipeline/images/placeholder.py's _CJK_FONTS)
# and Noto Color Emoji (emoji in the page, e.g. in prompts, in Chromium; placeholder frames leave them out).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
use_project_python requirements-dev.txt
[ -z "${SCENE2VIDEO_ENV_ONLY:-}" ] || exit 0

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v chromium >/dev/null || need_apt+=(chromium)
has_cjk_font() {
  local path
  for path in /usr/share/fonts/{opentype/noto,noto-cjk,google-noto-cjk}/NotoSansCJK-Regular.ttc; do
    [ -e "$path" ] && return 0
  done
  return 1
}
has_cjk_font || need_apt+=(fonts-noto-cjk)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || need_apt+=(fonts-noto-color-emoji)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    # Quiet unless it fails (debconf chatters on stderr on a bare image).
    if ! log=$(apt-get update -qq 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" 2>&1)
    then
      echo "$log" >&2
      exit 1
    fi
  else
    echo "warning: please install ${need_apt[*]} (apt-get install ${need_apt[*]}); related tests will be skipped" >&2
  fi
fi

# Never 'playwright install': the browser tests drive the system's /usr/bin/chromium.
exec "$PYTHON" -m pytest "$@"
