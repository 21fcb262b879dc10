"""Remote backends: scenes per second against the tests' local server with 1 s latency per request.

``python bench/remote_backends.py [--scenes 16] [--latency 1] [--in-flight 1,4,8] [--no-write]``

For each backend (openai, hf-inference; the real client libraries) and each in-flight limit:
- **generate**: one ``generate`` call with every scene (the backend's own ceiling: in-flight / latency);
- **image stage**: the real ImageStage (cache off), which sends the first scene alone so its
  image shows at once, then the rest as one group. This is what a render sees.
Writes the "Remote backends" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, busy_note, environment, env_lines, publish, storyboard_dict

sys.path.insert(0, str(ROOT / "tests"))

from remote_server import HF_KEY, OPENAI_KEY, image_service  # noqa: E402

from pipeline import parse_storyboard  # noqa: E402
from pipeline.contract.events import KeyframeReady  # noqa: E402
from pipeline.images.backends.hf_inference import HFInferenceModel  # noqa: E402
from pipeline.images.backends.openai_images import OpenAIImageModel  # noqa: E402
from pipeline.images.generation import ImageRequest  # noqa: E402
from pipeline.images.slots import ImageSlots  # noqa: E402
from pipeline.images.stage import ImageStage  # noqa: E402

HEADING = "## Remote backends (bench/remote_backends.py)"


def make(backend: str, in_flight: int):
    """A backend, loaded (as a render's image stage and the app's warm-up do before any request)."""
    if backend == "openai":
        model = OpenAIImageModel("gpt-image-1", max_in_flight=in_flight)
    else:
        model = HFInferenceModel("black-forest-labs/FLUX.1-schnell", max_in_flight=in_flight)
    assert model.load(), model.info().reason
    return model


def time_generate(backend: str, in_flight: int, scenes: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process, server included) for one generate call."""
    requests = [ImageRequest(i, f"bench scene {i}", "", i, 4, 0.0, 1280, 720) for i in range(scenes)]
    model = make(backend, in_flight)
    started, cpu = time.perf_counter(), time.process_time()
    answers = model.generate(requests)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert all(a.image is not None for a in answers), [a.reason for a in answers if a.image is None][:1]
    return seconds, cpu


def time_stage(backend: str, in_flight: int, scenes: int) -> float:
    board = parse_storyboard({**storyboard_dict(scenes=scenes, duration=1.0, use_ai=True)})
    stage = ImageStage(make(backend, in_flight), cache=None)
    cancel = threading.Event()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        events = stage.run(board, Path(folder), ImageSlots(cancel), cancel, lambda event: None)
        ready = [e for e in events if isinstance(e, KeyframeReady)]
        seconds = time.perf_counter() - started
    assert len(ready) == scenes and all(e.source == "ai" for e in ready)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--in-flight", default="1,4,8")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    limits = [int(x) for x in args.in_flight.split(",")]
    env = environment()
    import huggingface_hub.constants

    huggingface_hub.constants.HF_HUB_OFFLINE = False  # the requests go to 127.0.0.1 only
    rows = []
    with image_service(latency=args.latency) as (url, state):
        os.environ.update(OPENAI_API_KEY=OPENAI_KEY, OPENAI_BASE_URL=url + "/v1", HF_TOKEN=HF_KEY,
                          HF_INFERENCE_ENDPOINT=url)
        for backend in ("openai", "hf-inference"):
            for limit in limits:
                state.max_in_flight = 0
                generate, cpu = time_generate(backend, limit, args.scenes)
                seen = state.max_in_flight
                stage = time_stage(backend, limit, args.scenes)
                ideal = min(limit, args.scenes) / args.latency
                rows.append(f"| {backend} | {limit} | {seen} | {args.scenes / generate:.2f} | {ideal:.2f} | "
                            f"{generate:.2f} | {1000 * cpu / args.scenes:.0f} | {args.scenes / stage:.2f} | "
                            f"{stage:.2f} |")
                print(rows[-1], flush=True)
    text = "\n".join([
        *env_lines(env),
        f"- {busy_note(env)}",
        f"- Server: tests/remote_server.py on 127.0.0.1, {args.latency:g} s latency per request, 1280x720 "
        f"keyframes (OpenAI: 1536x1024 PNG, base64; hf-inference: 1280x720 PNG bytes); clients: openai and "
        f"huggingface_hub's async clients",
        f"- Command: `python bench/remote_backends.py --scenes {args.scenes} --latency {args.latency:g} "
        f"--in-flight {args.in_flight}`",
        "",
        "| backend | in flight (setting) | most seen by the server | generate scenes/s | ideal scenes/s "
        "| generate s | CPU ms per scene | image stage scenes/s | image stage s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "The image stage sends the first N scenes (N in flight: the first image still shows after one "
        "request), then the rest as one group: about ceil(scenes/N) latencies. Each backend keeps one event "
        "loop and one HTTP client for every render, decodes and fits images in worker threads, and imports "
        "its client when it loads; the Before block predates the shared loop and client, the load-time "
        "import and the larger first batch. CPU per scene "
        "(client and server, one process) is decoding the PNG, cover-fitting it to the preset size and, in the "
        "stage, saving the keyframe; where the machine is busy that CPU, not the in-flight limit, sets the "
        "ceiling.",
    ])
    publish(HEADING, text, not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
