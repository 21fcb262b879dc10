"""Making images: every picture a video needs, from the cache, a backend, or a placeholder.

Requests and the backend interface (``generation``), the render plan (``plan``), the
image stage that fulfils it (``stage``, with ``morphs`` settling each morph transition)
and the slots where the timeline picks images up (``slots``); the backends
(``diffusers_backend``, imported lazily, and its ``morph_generation`` for in-between
images) and the registry
that shares them (``registry``); model names without torch (``model_names``); batching,
previews, the image cache, placeholders and ZeroGPU support.
"""
