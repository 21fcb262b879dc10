"""Can the model hub be reached? Asked once per process and endpoint, with a short timeout.

Without this, loading a hub id with no network makes huggingface_hub retry for about half a
minute on every load (and the CLI pays it on every run). With it, a hub that does not answer is noticed
in at most ``PROBE_TIMEOUT_S`` and the load looks only in the local cache
(``local_files_only``), so it succeeds from the cache or fails at once with a clear reason.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from functools import lru_cache
from urllib.parse import urlsplit

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 1.5
OFFLINE_REASON = "the model hub cannot be reached (offline) and the model is not in the local cache"


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT`` or huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "").strip() or DEFAULT_ENDPOINT


def offline_by_setting() -> bool:
    """True when ``HF_HUB_OFFLINE`` says not to use the network at all."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_reachable() -> bool:
    """True if the hub answers (asked once per endpoint and process; False when offline by setting)."""
    reachable = not offline_by_setting() and _probe(hub_endpoint())
    if not reachable:
        _no_telemetry()
    return reachable


def _no_telemetry() -> None:
    """Turn off huggingface_hub's telemetry for this process (its documented ``HF_HUB_DISABLE_TELEMETRY``).

    Building request headers, even for a load from the local cache, it fetches a registry from the hub
    with a 3 s timeout: on a network that drops packets, the first load waited for that on top of the probe.
    """
    try:
        from huggingface_hub import constants
    except ImportError:  # nothing to load with, then
        return
    constants.HF_HUB_DISABLE_TELEMETRY = True


@lru_cache(maxsize=8)
def _probe(endpoint: str) -> bool:
    """One HEAD request to the endpoint's front page: reachable if it answers OK in time.

    An HTTP answer is needed, not just a connection: a proxy or captive portal accepts
    connections for any address, and then answers with an error.
    """
    result: list[bool] = []

    def ask() -> None:  # in a thread: a name lookup is not bounded by the request's timeout
        request = urllib.request.Request(endpoint.rstrip("/") + "/", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 - http(s) only
                result.append(response.status < 400)
        except (OSError, ValueError):  # URLError and HTTPError are OSErrors
            result.append(False)

    if urlsplit(endpoint).scheme not in ("http", "https"):
        return False
    thread = threading.Thread(target=ask, name="scene2video-hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(result and result[0])


def forget() -> None:
    """Ask again next time (after the network changed, and in tests)."""
    _probe.cache_clear()


def local_only(local_files_only: bool = False) -> bool:
    """``local_files_only`` for a load: as asked, or True when the hub cannot be reached."""
    return local_files_only or not hub_reachable()
