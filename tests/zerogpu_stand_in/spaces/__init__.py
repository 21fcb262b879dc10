"""A stand-in for Hugging Face's ``spaces`` package: what ``@spaces.GPU`` does that callers depend on.

Only on the import path while a test asks for it (tests/test_zerogpu.py). Modelled on
spaces 0.51 (``spaces/zero/decorator.py`` and ``spaces/zero/wrappers.py``):

- Off ZeroGPU (``SPACES_ZERO_GPU`` not "1", "t" or "true") ``GPU`` returns the function unchanged.
- On ZeroGPU the function runs in a forked worker process; its arguments and its result,
  or each item a generator function yields, are pickled across. Here each one makes a
  pickle round trip, so whatever could not cross fails here as it would on a Space.
- ``duration`` is a number or a callable given the call's arguments; it is asked when the
  call starts (for a generator: at its first ``next``), in the calling thread, which is
  also where the Gradio request is read from a context variable (``request`` here).
- Closing a wrapped generator stops the function's generator when it yields its next item.
"""

import contextvars
import functools
import inspect
import os
import pickle

# Per GPU task, in order: the seconds asked for and the request seen in the calling thread.
calls: list = []
requests: list = []
# Stands for gradio.context.LocalContext.request, which spaces reads to charge quota.
request: contextvars.ContextVar = contextvars.ContextVar("request")


def GPU(task=None, *, duration=None, size=None):
    if not callable(task):
        return functools.partial(_gpu, duration=duration)
    return _gpu(task, duration)


def _gpu(task, duration):
    if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
        return task
    wrap = _generator_wrapper if inspect.isgeneratorfunction(task) else _regular_wrapper
    wrapper = wrap(task, duration)
    wrapper.zerogpu_duration = duration
    return wrapper


def _schedule(duration, args, kwargs):
    calls.append(duration(*args, **kwargs) if callable(duration) else duration)
    requests.append(request.get(None))


def _cross(value):
    """What the trip to or from the worker process does to a value."""
    return pickle.loads(pickle.dumps(value))


def _regular_wrapper(task, duration):
    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        _schedule(duration, args, kwargs)
        args, kwargs = _cross((args, kwargs))
        return _cross(task(*args, **kwargs))

    return wrapper


def _generator_wrapper(task, duration):
    @functools.wraps(task)
    def wrapper(*args, **kwargs):
        _schedule(duration, args, kwargs)
        args, kwargs = _cross((args, kwargs))
        generator = task(*args, **kwargs)
        try:
            for item in generator:
                yield _cross(item)
        finally:
            # The worker sees the caller's stop only once the function yields again.
            next(generator, None)
            generator.close()

    return wrapper
