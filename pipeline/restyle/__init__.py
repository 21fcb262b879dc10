"""Restyling a video: its shots found, each shot redrawn by the image model, steady from frame to frame.

``source``: the source video probed at the door (limits checked before anything is decoded) and
decoded as a stream of RGB frames at the storyboard's rate (the bundled ffmpeg). ``shots``: the
shots found by PySceneDetect's content detector, and the storyboard they make (one scene per shot,
with its source span). ``coherence``: the redrawn keyframes carried along the source's optical flow
(``pipeline.video.flow``) to the frames between them. ``stage``: the restyle stage of a render, which
writes each restyled shot as a footage folder (``pipeline.contract.footage``) the timeline shows.

May import ``contract/``, ``images/`` (the backend interface and look helpers), ``video/flow.py``
and ``audio/probe.py`` (the bundled ffmpeg).
"""
