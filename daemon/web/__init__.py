"""The web remote: the control room on any phone, tablet or laptop.

``WebServer`` (``server``) serves the page in ``page/`` and its WebSocket on the daemon's event
loop (aiohttp). The daemon imports this package only when the config has a ``[web]`` section.
"""

from controlroom.daemon.web.server import WebServer

__all__ = ["WebServer"]
