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

Rules that keep PortAudio 19.6's JACK host API from aborting the process (its ``ASSERT_CALL`` checks
in ``Terminate``, ``CleanUpStream`` and ``PaJack_Initialize``'s error path fire when the JACK
server is gone):

- ``Pa_Terminate`` (``restart``) only on an instance with no open stream whose JACK client is
  still registered on a running server (``_jack_client_alive``: a probe client looks up the
  instance's client name). Each copy gets a unique client name (``PaJack_SetClientName``) for
  that; sounddevice's instance keeps the shared default name "PortAudio", so when it has a JACK
  host API it is never terminated: it is abandoned and a copy takes over.
- No library is ever unloaded: every instance and libjack are pinned with ``RTLD_NODELETE``,
  because a JACK client thread of an instance that is never terminated runs its code (and
  libjack's) until the process ends, also while the interpreter finalises and cffi closes
  what it opened.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
from collections.abc import Callable

import cffi
import sounddevice as sd

from controlroom.daemon.errors import EngineError
from controlroom.daemon.quiet import quiet_stderr

ffi = sd._ffi

#: Declarations sounddevice lacks: PortAudio's JACK and ALSA extras and a few libjack calls (the
#: probe).
_jffi = cffi.FFI()
_jffi.cdef("""
typedef struct _jack_client jack_client_t;
jack_client_t *jack_client_open(const char *client_name, int options, int *status, ...);
int jack_client_close(jack_client_t *client);
char *jack_get_uuid_for_client_name(jack_client_t *client, const char *client_name);
void jack_free(void *ptr);
int PaJack_SetClientName(const char *name);
int PaJack_GetClientName(const char **name);
void PaAlsa_EnableRealtimeScheduling(void *stream, int enable);
""")
_JACK_NO_START_SERVER = 0x01
_PA_JACK = 12  # PaHostApiTypeId paJACK
_PA_ALSA = 8  # PaHostApiTypeId paALSA
_PIN = _jffi.RTLD_NOW | _jffi.RTLD_NODELETE
_names = itertools.count(1)

#: Seconds a PortAudio call that waits on the audio thread may take before its device counts
#: as lost (stopping a JACK stream waits for one process cycle; ALSA drains its buffers).
CALL_TIMEOUT_S = 2.0


class PortAudioLibrary:
    """One initialised instance of the PortAudio library (``lib``: its cffi functions)."""

    def __init__(self, lib, shared: bool, path: str, client_name=None) -> None:
        self.lib = lib
        self.shared = shared  # sounddevice's instance
        self.usable = True
        self.given_up = 0  # streams abandoned while open (PortAudioHost)
        self.open_streams = 0  # open or being opened (``reserve``); kept by PortAudioHost
        #: held around every call that is not thread-safe (open, start, stop, close, restart)
        self.lock = threading.RLock()
        #: the same object, declared by ``_jffi`` (PaJack_*), pinned in memory
        self._extras = _jffi.dlopen(path, _PIN)
        self._client_name = client_name  # char[] PaJack_SetClientName points at: keep it
        self.jack_client: str | None = None  # the JACK client's name; None: no JACK host API
        self._note_jack_client()

    def _note_jack_client(self) -> None:
        """Read the JACK client's name now, while the client surely lives: libjack frees a dead
        server's clients when another client opens."""
        self.jack_client = None
        if self.lib.Pa_HostApiTypeIdToHostApiIndex(_PA_JACK) >= 0:
            name = _jffi.new("const char **")
            if self._extras.PaJack_GetClientName(name) == 0 and name[0] != _jffi.NULL:
                self.jack_client = _jffi.string(name[0]).decode(errors="replace")

    def request_realtime(self, stream, device: dict) -> bool:
        """Have PortAudio start the audio thread of ``stream`` (open, not started) on ``device``
        with SCHED_FIFO where it would not by itself: its ALSA host API runs the callback at
        normal priority unless asked (JACK's process thread is real-time already, as JACK
        runs it). True when asked; the thread gets it if the process may (``LimitRTPRIO``,
        ``@audio - rtprio`` in limits.conf), else PortAudio keeps normal priority."""
        if self.lib.Pa_GetDeviceInfo(device["index"]).hostApi != self.lib.Pa_HostApiTypeIdToHostApiIndex(_PA_ALSA):
            return False
        try:
            enable = self._extras.PaAlsa_EnableRealtimeScheduling
        except AttributeError:  # a PortAudio built without ALSA
            return False
        enable(_jffi.cast("void *", int(ffi.cast("uintptr_t", stream))), 1)
        return True

    def can_terminate(self) -> bool:
        """``Pa_Terminate`` will not abort: no stream is open, and the instance has no JACK
        client or its uniquely named client is still registered on a running server."""
        if not self.usable or self.open_streams:
            return False
        if self.jack_client is None:
            return True
        return self._client_name is not None and _jack_client_alive(self.jack_client)

    def stream_gone(self, given_up: bool = False) -> None:
        """One stream fewer is open (closed, failed to open, or ``given_up``)."""
        with _lock:
            self.open_streams -= 1
            self.given_up += bool(given_up)

    def error_text(self, error: int) -> str:
        """PortAudio's message for a negative error code."""
        return ffi.string(self.lib.Pa_GetErrorText(error)).decode(errors="replace")

    def restart(self) -> None:
        """Terminate and initialise again, for a fresh device list. Only when ``can_terminate()``
        (see the module docstring); RuntimeError while a stream of it is open."""
        if self.open_streams:
            raise RuntimeError(f"PortAudio instance has {self.open_streams} open stream(s): not restarted")
        if self._client_name is None:
            self._client_name = _unique_client_name()
        self._extras.PaJack_SetClientName(self._client_name)  # for the next Pa_Initialize
        with self.lock:
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
            self._note_jack_client()

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
_lock = threading.RLock()


def current() -> PortAudioLibrary:
    """The instance to use now: sounddevice's, or a fresh copy once that was abandoned."""
    global _current
    with _lock:  # an RLock: reserve() calls this holding it
        if _ensure_current().usable:
            return _current
        _current = _load_copy()
        return _current


def reserve() -> PortAudioLibrary:
    """``current()``, counting one more stream as open on it (the caller opens one, and
    decrements ``open_streams`` if that fails)."""
    with _lock:
        instance = current()
        instance.open_streams += 1
        return instance


def renew() -> PortAudioLibrary:
    """An instance with a fresh device list: the current one restarted if that is safe (no
    stream open, its JACK client alive: ``can_terminate``), else a new copy, the current one
    abandoned. RuntimeError while a stream of the current instance is open."""
    global _current
    with _lock:
        instance = _ensure_current()
        if instance.usable and instance.open_streams:
            raise RuntimeError(f"PortAudio instance has {instance.open_streams} open stream(s): not renewed")
        if instance.can_terminate():
            instance.restart()
        else:
            instance.abandon()
            _current = _load_copy()
        return _current


def lost_if_dead(instance: PortAudioLibrary) -> bool:
    """Abandon ``instance`` if its JACK client is gone (the server died or was replaced), so
    that nothing calls it again; True if it was abandoned. An instance without a JACK client is
    kept; sounddevice's with one is abandoned, since its client cannot be looked up by name."""
    with _lock:
        if not instance.usable or instance.jack_client is None:
            return not instance.usable
        if instance._client_name is not None and _jack_client_alive(instance.jack_client):
            return False
        instance.abandon()  # dead, or sounddevice's, whose client cannot be told apart
        return True


def finalisation_safe() -> bool:
    """No stream can still call back: the interpreter may finalise (and free the numba-compiled
    callback and the pointer tables under a stream that still runs). False if a stream is still
    open (its host was dropped without ``close()``), or if one was given up on an instance
    without a JACK client (ALSA ...) or whose JACK client may still be served (a stall rather
    than a dead server); the caller should then leave with ``os._exit`` once all is saved."""
    with _lock:
        instances = _abandoned + ([_current] if _current is not None and _current.usable else [])
        if any(instance.open_streams for instance in instances):
            return False  # a stream never closed (a host dropped while open) still runs
        for instance in _abandoned:
            if not instance.given_up:
                continue
            if instance.jack_client is None:
                return False
            if instance._client_name is None:  # sounddevice's: not unique, ask the server
                if _jack_server_running():
                    return False
            elif _jack_client_alive(instance.jack_client):
                return False
        return True


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


@atexit.register
def _before_sounddevice_terminates() -> None:
    # Registered after sounddevice's handler, so it runs first: sounddevice calls Pa_Terminate
    # on its instance at exit, which aborts if that instance's JACK server is gone.
    with _lock:
        if _current is not None and _current.shared and _current.usable and not _current.can_terminate():
            sd._initialized = 0


def _ensure_current() -> PortAudioLibrary:
    global _current
    if _current is None:
        _pin("libjack.so.0")
        _current = PortAudioLibrary(sd._lib, shared=True, path=_library_path())
    return _current


def _pin(name: str) -> None:
    """Never unload the loaded library ``name`` (RTLD_NODELETE); nothing if it is not loaded."""
    try:
        _jffi.dlopen(name, _PIN | _jffi.RTLD_NOLOAD)
    except OSError:
        pass


def _unique_client_name() -> object:
    # "PortAudio" first, as PortAudio names it: JACK patchbays (and the tests) look for it
    return _jffi.new("char[]", f"PortAudio-controlroom-{os.getpid()}-{next(_names)}".encode())


_libjack = None


def _jack():
    global _libjack
    if _libjack is None:
        _libjack = _jffi.dlopen("libjack.so.0", _PIN)
    return _libjack


@contextlib.contextmanager
def _probe_client():
    """A JACK client of the default server (JACK_DEFAULT_SERVER), or None if none runs."""
    jack = _jack()
    status = _jffi.new("int *")
    with quiet_stderr():
        client = jack.jack_client_open(b"controlroom-probe", _JACK_NO_START_SERVER, status)
    try:
        yield None if client == _jffi.NULL else client
    finally:
        if client != _jffi.NULL:
            jack.jack_client_close(client)


def _jack_server_running() -> bool:
    with _probe_client() as client:
        return client is not None


def _jack_client_alive(name: str) -> bool:
    """A client called ``name`` is registered on the running JACK server."""
    with _probe_client() as client:
        if client is None:
            return False
        uuid = _jack().jack_get_uuid_for_client_name(client, name.encode())
        if uuid == _jffi.NULL:
            return False
        _jack().jack_free(uuid)
        return True


def _library_path() -> str:
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if os.path.basename(path).startswith("libportaudio"):
                return path
    raise OSError("libportaudio is not loaded")


_copies = itertools.count(1)


def _load_copy() -> PortAudioLibrary:
    """A private, initialised copy of the PortAudio library, its JACK client uniquely named,
    never unloaded."""
    with open(_library_path(), "rb") as source:
        image = source.read()
    descriptor = os.memfd_create("libportaudio")
    try:
        with open(descriptor, "wb", closefd=False) as memory_file:
            memory_file.write(image)
        # The loader knows an object by the path it was opened with: once this descriptor is
        # closed its number comes back, and "/proc/self/fd/N" again would hand back the old
        # copy. A path of its own per copy ("./" repeated) lets the descriptor go.
        path = f"/proc/self/fd/{'./' * next(_copies)}{descriptor}"
        lib = ffi.dlopen(path, _PIN)
        extras = _jffi.dlopen(path, _PIN)
    finally:
        os.close(descriptor)  # the mapping keeps the copy
    name = _unique_client_name()
    extras.PaJack_SetClientName(name)
    _initialise(lib)
    return PortAudioLibrary(lib, shared=False, path=path, client_name=name)


def _initialise(lib) -> None:
    with quiet_stderr():
        error = lib.Pa_Initialize()
    if error < 0:
        text = ffi.string(lib.Pa_GetErrorText(error)).decode(errors="replace")
        raise EngineError(f"cannot initialise PortAudio: {text}")
