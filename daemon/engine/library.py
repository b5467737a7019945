"""PortAudio library instances, and how to get a fresh one after a device loss.

PortAudio 19.6 cannot clean up after its JACK server died: closing a stream waits 10 minutes
for a process callback that never comes, and ``Pa_Terminate`` fails an assertion in
``jack_deactivate`` and aborts the whole process. (ALSA devices that vanish are less hostile,
but an audio thread that stopped unasked is not worth the gamble.) So an instance that lost
its device is never called again: it is *abandoned*, and a private copy of the library —
loaded from an in-memory file so that the dynamic loader maps it as a separate object with its
own state — takes over, with a fresh device list.

The first instance is sounddevice's own. Once it is abandoned, sounddevice's module functions
(``query_devices`` ...) describe a dead instance: use ``devices.list_devices()`` instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

import sounddevice as sd

from controlroom.daemon.errors import EngineError

ffi = sd._ffi

#: Seconds a PortAudio call that waits on the audio thread may take before its device counts
#: as lost (stopping a JACK stream waits for one process cycle; ALSA drains its buffers).
CALL_TIMEOUT_S = 2.0


class PortAudioLibrary:
    """One initialised instance of the PortAudio library (``lib``: its cffi functions)."""

    def __init__(self, lib, shared: bool) -> None:
        self.lib = lib
        self.shared = shared  # sounddevice's instance
        self.usable = True

    def error_text(self, error: int) -> str:
        """PortAudio's message for a negative error code."""
        return ffi.string(self.lib.Pa_GetErrorText(error)).decode(errors="replace")

    def restart(self) -> None:
        """Terminate and initialise again, for a fresh device list. Only for an instance whose
        devices did not vanish under an open stream (see the module docstring)."""
        if self.shared:
            while sd._initialized:
                sd._terminate()
            try:
                sd._initialize()
            except sd.PortAudioError as exc:
                raise EngineError(f"cannot initialise PortAudio: {exc}") from exc
        else:
            self.lib.Pa_Terminate()
            _initialise(self.lib)

    def abandon(self) -> None:
        """Never call this instance again; its memory and threads stay as they are."""
        if not self.usable:
            return
        self.usable = False
        _abandoned.append(self)
        if self.shared:
            # sounddevice terminates PortAudio at exit, which would abort the process.
            sd._initialized = 0


_current: PortAudioLibrary | None = None
#: Abandoned instances stay referenced: unloading their code could pull it from under a
#: thread of theirs that is still alive.
_abandoned: list[PortAudioLibrary] = []
_lock = threading.Lock()


def current() -> PortAudioLibrary:
    """The instance to use now: sounddevice's, or a fresh copy once that was abandoned."""
    global _current
    with _lock:
        if _ensure_current().usable:
            return _current
        _current = PortAudioLibrary(_load_copy(), shared=False)
        return _current


def renew() -> PortAudioLibrary:
    """An instance with a fresh device list: the current one restarted, or a new copy if it
    was abandoned. A restarted instance must have no stream open."""
    global _current
    with _lock:
        if _ensure_current().usable:
            _current.restart()
        else:
            _current = PortAudioLibrary(_load_copy(), shared=False)
        return _current


def server_lost() -> None:
    """Abandon the current instance: its audio server (JACK) went away under it. For callers
    that know this without a stream noticing it, e.g. a test that kills the JACK server."""
    with _lock:
        _ensure_current().abandon()


def call_with_timeout(function: Callable[..., int], *args, timeout: float = CALL_TIMEOUT_S) -> int | None:
    """``function(*args)`` in a helper thread; None if it did not return within ``timeout``
    seconds (it then finishes, or not, on its own; the thread keeps ``args`` alive)."""
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(function(*args)), name="controlroom-portaudio", daemon=True)
    thread.start()
    thread.join(timeout)
    return result[0] if result else None


# --- internals ---------------------------------------------------------------------------------


def _ensure_current() -> PortAudioLibrary:
    global _current
    if _current is None:
        _current = PortAudioLibrary(sd._lib, shared=True)
    return _current


def _library_path() -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libportaudio"):
                return path
    raise OSError("libportaudio is not loaded")


#: memfd descriptors of the loaded copies, never closed: the loader recognises an object by
#: the path it was opened with, and a reused descriptor number would hand back an old copy.
_images: list[int] = []


def _load_copy():
    """A private, initialised copy of the PortAudio library."""
    with open(_library_path(), "rb") as source:
        image = source.read()
    descriptor = os.memfd_create("libportaudio")
    _images.append(descriptor)
    with open(descriptor, "wb", closefd=False) as memory_file:
        memory_file.write(image)
    lib = ffi.dlopen(f"/proc/self/fd/{descriptor}")
    _initialise(lib)
    return lib


def _initialise(lib) -> None:
    with _quiet_stderr():
        error = lib.Pa_Initialize()
    if error < 0:
        text = ffi.string(lib.Pa_GetErrorText(error)).decode(errors="replace")
        raise EngineError(f"cannot initialise PortAudio: {text}")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    # As sounddevice does: PortAudio's ALSA and JACK probes print pages of noise.
    saved = os.dup(2)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
