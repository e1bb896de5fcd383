"""The exceptions gan_fast raises beyond ``ValueError``/``TypeError`` (imports nothing of gan_fast)."""

__all__ = ["BackendUnavailableError", "UnsupportedDtypeError", "warn"]


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run this call.

    The message names the op, the backend, the reason and the backend that would take the call
    (usually ``impl='ref'``; ``impl=None`` chooses it automatically).
    """


class UnsupportedDtypeError(BackendUnavailableError, TypeError):
    """An explicitly requested backend does not compute this dtype exactly (float64 on a float32 kernel,
    complex on a real one). Also a ``TypeError``: the dtype is what is wrong for that backend."""


def warn(message: str, category: type = RuntimeWarning) -> None:
    """``warnings.warn`` pointing at the caller's line: the first frame outside gan_fast (and outside torch,
    whose module machinery may sit between a model and our ops), so a warning names the user's call."""
    import os  # noqa: PLC0415 - warnings are rare: keep the import off the module's load
    import sys  # noqa: PLC0415
    import warnings  # noqa: PLC0415

    package = os.path.dirname(os.path.abspath(__file__))
    skip = (package + os.sep, os.path.join(os.path.dirname(package), "kernels") + os.sep)
    try:
        import torch  # noqa: PLC0415

        skip += (os.path.dirname(os.path.abspath(torch.__file__)) + os.sep,)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the frame that called warn()
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skip):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level if frame is not None else 2)
