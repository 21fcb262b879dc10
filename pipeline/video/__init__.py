"""Making video: keyframes + durations + motion + transitions -> frames -> H.264 segments and the MP4.

``timeline`` plans and composes frames, ``transitions`` blends two frames, ``morph``
draws a morph from its generated in-between images (and reports each transition),
``imaging`` fits pictures to the frame, ``encoder`` runs ffmpeg, ``background``
runs a generator in a thread. No model code here.
"""
