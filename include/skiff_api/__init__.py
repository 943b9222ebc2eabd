"""Skiff's HTTP API as AWS Lambda handlers, with their local stand-ins and their packaging.

- :mod:`~skiff_api.handler`: ``GET /predict`` (``Handler: handler.lambda_handler`` in
  ``template.yaml``). It imports the standard library and :mod:`~skiff_api.gateway` only
  (boto3 when it makes its client): ``package.py`` zips it at the zip's root, where it
  imports as ``handler``, with ``skiff_api/__init__.py`` and ``skiff_api/gateway.py``.
- :mod:`~skiff_api.gateway`: API Gateway proxy events in, JSON proxy responses out, errors
  and the per-container client: what both Lambda handlers share (standard library only).
- :mod:`~skiff_api.local_adapter`: a local stand-in for API Gateway (real HTTP -> proxy event
  -> the handler), on :mod:`skiff.serve`'s HTTP base.
- :mod:`~skiff_api.local_stack`: ``skiff serve``: the local model server and the adapter in
  one process.
- :mod:`~skiff_api.collect`: ``/collect`` (``Handler: collect.lambda_handler``): the contract
  checks of ``skiff collect``, then Firehose. ``package.py`` zips it at the root with
  ``skiff_api.gateway`` and the standard-library-only ``skiff`` modules it shares
  (``skiff.data.contract``, ``.intake``).
- :mod:`~skiff_api.package`: builds the deployment zips (``make lambda``).

The dependency runs one way: ``skiff_api`` builds on ``skiff`` (the local pieces use
``skiff.serve``), and ``skiff`` imports nothing of ``skiff_api`` except in ``skiff.cli``, the
application that wires the ``skiff serve`` command. This file imports nothing, so importing
the handler costs what the handler costs.
"""
