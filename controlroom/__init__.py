"""controlroom: a headless studio monitor controller."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("controlroom")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
