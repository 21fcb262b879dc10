#!/usr/bin/env bash
# Everything a lent GPU machine is asked, in one call (the device tool's `run`, from the repository root):
#   bash bench/gpu_run.sh                 with .whl carried (see below); results into $OUT
#   GPU_RUN_DRY=1 bash bench/gpu_run.sh   the same steps on this CPU at tiny sizes (the project's .venv)
#
# .whl (ignored by git, made by bench/gpu_wheels.sh) holds what that machine's python3 lacks: the diffusers
# wheel, imageio-ffmpeg's Python files, and its ffmpeg binary xz-compressed (the wheel alone is 68 MB, over
# the 64 MiB a call may carry). Each bench runs under its own time limit, so a slow one cannot cost the
# others their results; all output goes to $OUT/run.log, the tables to $OUT/RESULTS.md (bench/RESULTS.md as
# the benches left it there), $OUT/render.json and $OUT/keyframes.md.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/scene2video-gpu-run}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
LOG="$OUT/run.log"
say() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$LOG"; }

if [ -n "${GPU_RUN_DRY:-}" ]; then
  PY=${PY:-.venv/bin/python}
  DEVICE=cpu
else
  PY=python3
  DEVICE=cuda
  say "installing the carried packages"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl >>"$LOG" 2>&1 || { say "pip install failed"; exit 1; }
  cp -r .whl/imageio_ffmpeg /tmp/site/
  "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('/tmp/ffmpeg', 'wb'))" \
    .whl/ffmpeg-linux-x86_64-v9.0.2.xz && chmod +x /tmp/ffmpeg
  export PYTHONPATH=/tmp/site IMAGEIO_FFMPEG_EXE=/tmp/ffmpeg
fi

say "the project's imports"
"$PY" - >>"$LOG" 2>&1 <<'EOF'
import importlib, platform, subprocess
for name in ("torch", "diffusers", "transformers", "accelerate", "safetensors", "numpy", "cv2", "PIL",
             "imageio_ffmpeg", "sentencepiece"):
    try:
        module = importlib.import_module(name)
        print(f"ok   {name} {getattr(module, '__version__', '')}")
    except Exception as exc:  # noqa: BLE001 - the point is to list every one that fails
        print(f"FAIL {name}: {type(exc).__name__}: {exc}")
import torch
import imageio_ffmpeg
from diffusers import LTXConditionPipeline, StableDiffusionPipeline  # noqa: F401
import pipeline.cli, pipeline.renderer, pipeline.images.diffusers_backend, pipeline.images.video_backends.manager  # noqa: F401,E401
print("ok   the project's modules (pipeline.cli, renderer, diffusers backend, video backend)")
print("python", platform.python_version(), "| cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
print(subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-version"], capture_output=True, text=True).stdout.split("\n")[0])
EOF
tail -14 "$LOG"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$LOG" 2>&1

if [ -n "${GPU_RUN_DRY:-}" ]; then
  clips=(--device cpu --dtype fp32 --pipeline --layers 1 --sizes 64x64 --seconds 0.4 --quick --no-write --channels-last)
  render=(--tiny --device cpu --duration 1)
  keyframes=(--device cpu --size 64 --batches 1,2 --runs 1 --warmup 0 --matmul-size 256 --channels-last
             --fuse-qkv --cudnn-benchmark --all-opts --no-singles)
else
  # A 5 s clip at the app's default 16:9 clip size, LTX's native 768x512 and the standard preset's size.
  clips=(--device cuda --dtype bf16 --runs 1 --sizes 832x480,768x512,1280x704 --channels-last)
  render=(--device cuda)
  keyframes=(--device cuda --size 512 --batches 1,4,8,16 --dtype bf16 --runs 5 --warmup 2 --channels-last
             --fuse-qkv --cudnn-benchmark --all-opts --no-singles)
fi

say "bench/gpu_clips.py ${clips[*]}"
timeout "${CLIPS_LIMIT:-230}" "$PY" bench/gpu_clips.py "${clips[@]}" >>"$LOG" 2>&1; say "gpu_clips exit $?"
say "bench/gpu_render.py ${render[*]}"
timeout "${RENDER_LIMIT:-160}" "$PY" bench/gpu_render.py "${render[@]}" --out "$OUT/render.json" >>"$LOG" 2>&1
say "gpu_render exit $?"
say "bench/gpu_keyframes.py ${keyframes[*]}"
timeout "${KEYFRAMES_LIMIT:-130}" "$PY" bench/gpu_keyframes.py "${keyframes[@]}" --out "$OUT/keyframes.md" \
  >>"$LOG" 2>&1
say "gpu_keyframes exit $?"
cp bench/RESULTS.md "$OUT/RESULTS.md"
command -v nvidia-smi >/dev/null && nvidia-smi >>"$LOG" 2>&1
say "done"
