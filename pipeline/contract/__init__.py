"""The contract: what a render is asked for and what it answers.

The Storyboard and its validation (``storyboard``), quality presets (``presets``),
the events a render yields and its report (``events``), the error types
(``errors``) and the server's settings (``settings``). Imports nothing else of the
pipeline but the torch-free model names.
"""
