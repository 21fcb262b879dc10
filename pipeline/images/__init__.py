"""Making images: every picture a video needs, from the cache, a backend, or a placeholder.

Requests and the backend interface (``generation``), the keyframe stage that fulfils
them (``keyframes``), the backends (``diffusers_backend``, imported lazily, and the
registry that shares them), batching, previews, the keyframe cache, placeholders and
ZeroGPU support. torch and diffusers are imported only inside ``diffusers_backend``.
"""
