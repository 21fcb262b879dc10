"""Many storyboards in one run: ``python -m pipeline batch SRC --out DIR [--ray [ADDRESS]] [--resume]``.

- ``sources``: SRC (a folder of storyboard files, or a JSONL file) as a list of items, each a checked
  storyboard or the one-line reason it is not usable.
- ``manifest``: the manifest (``DIR/manifest.jsonl``), one row per storyboard as it finishes; what a
  resumed run may skip.
- ``render_one``: one storyboard through the project's Renderer, timed, into an Outcome (both drivers).
- ``models``: where the image and video models come from (the settings, or a test's stand-in), picklable for Ray.
- ``files``: the storyboard's referenced files (every field of kind "file") as bytes, and back on a worker.
- ``footage_bytes``: a clip's footage folder as bytes (a Ray actor's clip, written again in the render task).
- ``local``: this machine: the models loaded once, the next storyboard's images made while the last encodes.
- ``ray_driver``: a Ray cluster: GPU actors hold the models, CPU tasks compose and encode (Ray imported only here).
- ``command``: the subcommand's flags, the progress bar, the summary and the exit code.
"""
