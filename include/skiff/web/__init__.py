"""Skiff's HTTP servers' common ground: the guarded HTTP/1.1 protocol, JSON errors, uvicorn runs.

Shared by the collector (:mod:`skiff.data.collector`) and the serving stack
(:mod:`skiff.serve.app`, :mod:`skiff.serve.control`, ``skiff_api.local_adapter``); Skiff
parses no HTTP itself: uvicorn (httptools) does, Starlette routes.

- :mod:`~skiff.web.protocol`: uvicorn's httptools protocol with a head cap, head and body
  timeouts and a connection cap, every refusal JSON (:func:`guarded`);
- :mod:`~skiff.web.middleware`: JSON error handlers, :class:`ConcurrencyLimit` (503 beyond
  the requests in progress), :func:`read_body` (413 beyond a limit);
- :mod:`~skiff.web.runner`: uvicorn servers bound, run together and stopped
  (:class:`ServerGroup`).
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "GuardedHttpToolsProtocol": "protocol", "guarded": "protocol", "refusal": "protocol",
    "ConcurrencyLimit": "middleware", "BodyTooLarge": "middleware", "NO_STORE": "middleware",
    "error_response": "middleware", "exception_handlers": "middleware", "read_body": "middleware",
    "ServerGroup": "runner", "uvicorn_server": "runner",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
