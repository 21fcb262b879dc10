"""The on-disk keyframe cache: keys, atomic writes, corruption, LRU cap."""

import os
import time

from PIL import Image

from pipeline.images.cache import KeyframeCache
from pipeline.images.plan import cache_key
from pipeline.images.generation import ImageRequest


def request(**changes):
    base = dict(scene_index=0, prompt="a fox", negative_prompt="", seed=1, steps=1, guidance_scale=0.0,
                width=64, height=64)
    base.update(changes)
    return ImageRequest(**base)


def image(colour):
    return Image.new("RGB", (64, 64), colour)


def test_key_changes_with_everything_that_decides_the_image():
    base = cache_key("m", request())
    assert cache_key("m", request(scene_index=5)) == base  # position in the storyboard does not matter
    for change in [dict(prompt="a bear"), dict(negative_prompt="x"), dict(seed=2), dict(steps=2),
                   dict(guidance_scale=1.0), dict(width=72), dict(height=72), dict(decoder="tiny")]:
        assert cache_key("m", request(**change)) != base
    assert cache_key("other-model", request()) != base


def test_put_then_get_returns_same_pixels(tmp_path):
    cache = KeyframeCache(tmp_path)
    cache.put("ab" * 32, image((10, 20, 30)))
    got = cache.get("ab" * 32)
    assert got is not None and got.getpixel((5, 5)) == (10, 20, 30)
    assert cache.get("cd" * 32) is None
    assert not list(tmp_path.rglob("*.tmp"))


def test_corrupted_entry_is_detected_and_removed(tmp_path):
    cache = KeyframeCache(tmp_path)
    key = "ab" * 32
    cache.put(key, image((200, 0, 0)))
    path = next(tmp_path.rglob("*.png"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert cache.get(key) is None
    assert not path.exists()
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"\x89PNG truncated")
    assert cache.get(key) is None and not path.exists()


def test_entry_under_wrong_name_is_rejected(tmp_path):
    cache = KeyframeCache(tmp_path)
    cache.put("ab" * 32, image((1, 2, 3)))
    src = next(tmp_path.rglob("*.png"))
    dst = tmp_path / "cd" / ("cd" * 32 + ".png")
    dst.parent.mkdir()
    dst.write_bytes(src.read_bytes())
    assert cache.get("cd" * 32) is None


def test_size_cap_evicts_least_recently_used(tmp_path, tmp_path_factory):
    cache = KeyframeCache(tmp_path, max_bytes=10**9)
    keys = [f"{i:02d}" * 32 for i in range(4)]
    for n, key in enumerate(keys):
        cache.put(key, Image.effect_noise((64, 64), 50 + n).convert("RGB"))
        path = tmp_path / key[:2] / f"{key}.png"
        os.utime(path, (1000 + n, 1000 + n))
    assert cache.get(keys[0]) is not None  # touching makes it the most recent
    newest = Image.effect_noise((64, 64), 90).convert("RGB")
    # The cap fits exactly the three entries that should stay (noise PNGs differ in size by a few
    # bytes from run to run, so "three times one entry" is not a safe cap); the new entry's stored
    # size is learnt from a scratch cache.
    scratch = KeyframeCache(tmp_path_factory.mktemp("scratch"))
    scratch.put("99" * 32, newest)
    newest_size = scratch.stats()[1]
    cache.max_bytes = sum((tmp_path / k[:2] / f"{k}.png").stat().st_size for k in (keys[0], keys[3])) + newest_size
    cache.put("99" * 32, newest)
    assert cache.get(keys[1]) is None  # the oldest untouched entry went first
    assert cache.get(keys[0]) is not None
    count, total = cache.stats()
    assert total <= cache.max_bytes and count == 3


def test_clear_removes_everything(tmp_path):
    cache = KeyframeCache(tmp_path)
    for i in range(3):
        cache.put(f"{i:02d}" * 32, image((i, i, i)))
    assert cache.clear() == 3 and cache.stats() == (0, 0)


def test_writes_left_half_done_by_a_killed_process_are_swept(tmp_path):
    shard = tmp_path / "ab"
    shard.mkdir()
    stale, live = shard / "tmpold.tmp", shard / "tmpnew.tmp"
    stale.write_bytes(b"\x89PNG half")
    live.write_bytes(b"\x89PNG being written")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    cache = KeyframeCache(tmp_path)
    assert not stale.exists() and live.exists()
    assert cache.stats() == (0, 0)
