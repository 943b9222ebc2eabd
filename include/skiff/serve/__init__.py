"""The serve stage: model bundles, the local model server, its endpoints and the champion registry.

- :mod:`~skiff.serve.server`: bundles, the loaded model, micro-batches, endpoints, the server.
- :mod:`~skiff.serve.codec`: the endpoints' JSON contract (also the SageMaker container's code).
- :mod:`~skiff.serve.registry`: the champion registry and the gate's decision.
- :mod:`~skiff.serve.httpserver`: the keep-alive HTTP base of the local servers.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "read_bundle_meta": "server", "unpack_bundle": "server", "LoadedModel": "server",
    "ModelServer": "server", "EndpointStore": "server", "EndpointRecord": "server",
    "LocalRuntimeClient": "server", "configure_tensorflow": "server",
    "ChampionRecord": "registry", "ModelRegistry": "registry", "gate_decision": "registry",
    "open_storage": "registry",
    "KeepAliveHandler": "httpserver", "ThreadedServer": "httpserver",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
