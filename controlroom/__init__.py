"""controlroom: a headless studio monitor controller."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # ``__version__`` is read on first use (``--version``, Home Assistant discovery): importing
    # importlib.metadata takes a fifth of a light command such as ``controlroom ctl``.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("controlroom")
    except PackageNotFoundError:  # running from a checkout that was never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
