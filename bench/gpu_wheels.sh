#!/usr/bin/env bash
# Makes .whl (ignored by git) for bench/gpu_run.sh: what a lent GPU machine's python3 (3.12, torch with
# CUDA, transformers, accelerate, safetensors, OpenCV) lacks, within the 64 MiB a device call may carry.
# Run here, where pip reaches the package registry; the GPU machine reaches nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
work=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$work" diffusers==0.42.1 imageio-ffmpeg==0.8.1
mv "$work"/diffusers-*.whl .whl/
# imageio-ffmpeg: its Python files as they are, its 165 MB ffmpeg compressed (about 50 MB); gpu_run.sh
# unpacks it and points IMAGEIO_FFMPEG_EXE at it.
(cd "$work" && python3 -m zipfile -e imageio_ffmpeg-*.whl unpacked)
mkdir -p .whl/imageio_ffmpeg/binaries
cp "$work"/unpacked/imageio_ffmpeg/*.py .whl/imageio_ffmpeg/
cp "$work"/unpacked/imageio_ffmpeg/binaries/__init__.py .whl/imageio_ffmpeg/binaries/
xz -T0 -6 -c "$work"/unpacked/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2 > .whl/ffmpeg-linux-x86_64-v9.0.2.xz
rm -rf "$work"
du -sh .whl
