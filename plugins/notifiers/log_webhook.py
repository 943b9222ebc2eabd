"""Failure alerts as log lines, shaped like the Slack provider's ``SlackWebhookNotifier``.

This is the hook point alerts go through: ``dags/skiff_hourly.py`` wires a notifier into
``default_args["on_failure_callback"]`` (every task) and the DAG's ``on_failure_callback``
(the run). Here it logs; a Slack webhook is the same call with another notifier.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseNotifier

from hooks.log_alerts import LogWebhookHook

__all__ = [
    "DAG_FAILURE_TEXT",
    "TASK_FAILURE_TEXT",
    "LogWebhookNotifier",
    "send_log_webhook_notification",
]

#: Alert text of a failed task (templated with the task's context; ``exception`` is the error).
TASK_FAILURE_TEXT = (
    ":red_circle: Skiff: task {{ ti.task_id }} of {{ dag.dag_id }} failed for the data interval "
    "{{ data_interval_start }} .. {{ data_interval_end }} (run {{ run_id }}, try "
    "{{ ti.try_number }}).\n{{ exception }}"
)
#: Alert text of a failed DAG run (the context of its last failed task, when there is one).
DAG_FAILURE_TEXT = (
    ":red_circle: Skiff: run {{ run_id }} of {{ dag.dag_id }} failed ({{ reason }})"
    "{% if ti is defined %}; first failed task {{ ti.task_id }}{% endif %}."
)


class LogWebhookNotifier(BaseNotifier):
    """Send an alert through :class:`~hooks.log_alerts.LogWebhookHook` (a log line).

    Same parameters and shape as ``SlackWebhookNotifier``: ``text`` is templated with the
    callback's context, the hook is built on first use, ``notify`` is one hook call.

    :param text: the alert's text (templated).
    :param logger_name: logger of the alerts. Default ``skiff.alerts``.
    """

    template_fields: Sequence[str] = ("text",)

    def __init__(self, *, text: str, logger_name: str = "skiff.alerts", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.logger_name = logger_name

    @cached_property
    def hook(self) -> LogWebhookHook:
        """The log hook."""
        return LogWebhookHook(logger_name=self.logger_name)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render ``text``; without the DAG's Jinja environment (``dag.test()`` hands DAG
        callbacks a serialized DAG), with Airflow's default one."""
        if jinja_env is None and not hasattr(context.get("dag"), "get_template_env"):
            jinja_env = self.get_template_env(dag=None)
        super().render_template_fields(context, jinja_env)

    def notify(self, context: Any) -> None:
        """Send the rendered text."""
        self.hook.send(text=self.text)

    def __call__(self, *args: Any) -> None:
        # BaseNotifier renders template fields in place; render a copy, so that one notifier
        # object (a DAG's, or a task's default_args in dag.test) serves many callbacks.
        BaseNotifier.__call__(copy.copy(self), *args)


send_log_webhook_notification = LogWebhookNotifier
