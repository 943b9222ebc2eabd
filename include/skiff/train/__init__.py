"""The train stage: features, the two Keras models, their baselines and metrics, the flows' glue.

- :mod:`~skiff.train.datasets`: the marts as Arrow tables, a split by time, a data version.
- :mod:`~skiff.train.features`: vocabularies, intent prefixes, padding, next-item windows.
- :mod:`~skiff.train.layers` / :mod:`~skiff.train.models`: the Keras layers and models.
- :mod:`~skiff.train.pipeline`: the ``tf.data`` input pipeline of the fit loops.
- :mod:`~skiff.train.device`: GPU or CPU, mixed precision, cuDNN eligibility.
- :mod:`~skiff.train.baselines`: what the models must beat, in numpy.
- :mod:`~skiff.train.metrics`: ROC-AUC, F1, MRR@k, slices and the champion/challenger decision.
- :mod:`~skiff.train.intent` / :mod:`~skiff.train.next_item`: each task end to end.
- :mod:`~skiff.train.glue`: what the Metaflow flows share (read marts, store models, size steps).
- :mod:`~skiff.train.champion`: the serving champion re-scored on a run's held-out sessions.
- :mod:`~skiff.train.launch`: how a flow is launched, locally or on AWS Batch.
- :mod:`~skiff.train.tracking`: Weights & Biases, offline by default.
"""

from skiff._exports import lazy_exports

_EXPORTS = {
    "load_champion": "champion",
    "models_dir": "glue", "read_training_data": "glue", "step_resources": "glue",
    "store_model": "glue",
    "FlowLaunch": "launch", "flow_launch": "launch", "metaflow_env": "launch",
    "GateDecision": "metrics", "compare": "metrics",
    "log_training_run": "tracking",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
