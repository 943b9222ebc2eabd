"""The serve stage: model bundles, the local model server, its endpoints and the champion registry.

- :mod:`~skiff.serve.bundle`: the bundle format and :class:`BundleRef`, where a run's bundle
  is; ``bundle.resolve`` / ``bundle.tarball`` / ``bundle.upload`` move it.
- :mod:`~skiff.serve.model`: a bundle loaded and warmed up (:class:`LoadedModel`).
- :mod:`~skiff.serve.batcher`: concurrent requests grouped into one model call (bounded wait).
- :mod:`~skiff.serve.server`: endpoints (atomic swaps, kinds checked) and the model server.
- :mod:`~skiff.serve.app`: its data plane over HTTP (``/ping``, ``/invocations``; Starlette
  on uvicorn, :mod:`skiff.web`'s limits).
- :mod:`~skiff.serve.control`: its control plane over HTTP (swaps, ``GET /endpoints``), on
  its own listener, with a bearer token.
- :mod:`~skiff.serve.store`: the local control plane's endpoint configs and endpoints.
- :mod:`~skiff.serve.client`: an in-process ``sagemaker-runtime`` client.
- :mod:`~skiff.serve.codec`: the endpoints' JSON contract (also the SageMaker container's code).
- :mod:`~skiff.serve.predlog`: the prediction log, every answer handed off the request's
  path to :mod:`~skiff.serve.predlog_sender`, the process that posts them to the collector.
- :mod:`~skiff.serve.registry`: the champion registry and the gate's decision.

``skiff serve`` (the model server's two planes with the ``/predict`` adapter beside) is
:class:`skiff_api.local_stack.LocalStack`: ``skiff_api`` builds on this package.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "BundleRef": "bundle", "write_bundle": "bundle", "read_bundle_meta": "bundle",
    "pack_bundle": "bundle", "unpack_bundle": "bundle",
    "LoadedModel": "model", "configure_tensorflow": "model",
    "Endpoint": "server", "ModelServer": "server", "KindMismatch": "server",
    "MicroBatcher": "batcher", "PredictTimeout": "batcher",
    "create_app": "app", "serving_server": "app",
    "control_token": "control", "BearerAuth": "control",
    "EndpointStore": "store", "EndpointRecord": "store",
    "LocalRuntimeClient": "client", "LocalModelError": "client",
    "PredictionLog": "predlog",
    "ChampionRecord": "registry", "ModelRegistry": "registry", "gate_decision": "registry",
    "open_storage": "registry",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
