"""Skiff's alerts: a Slack message when the Slack connection exists, a log line otherwise.

``dags/skiff_hourly.py`` wires :class:`SkiffAlertNotifier` into
``default_args["on_failure_callback"]`` (every task), the DAG's ``on_failure_callback`` (the
run) and the DAG's Deadline Alert (a run still going ``SKIFF_RUN_DURATION_ALERT_MINUTES`` after
it was queued). The backend is chosen
when an alert is sent, never while the DAG file is parsed.
"""

from __future__ import annotations

import copy
import logging
import traceback
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowNotFoundException

from hooks.log_alerts import LogWebhookHook

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook
    from airflow.sdk import Context

__all__ = [
    "DAG_FAILURE_TEXT",
    "RUN_DURATION_TEXT",
    "TASK_FAILURE_TEXT",
    "SkiffAlertNotifier",
    "error_summary",
]

#: Alert of a failed task (its context; ``error`` is the first lines of ``exception``).
TASK_FAILURE_TEXT = (
    ":red_circle: *Skiff: task {{ ti.task_id }} of {{ dag.dag_id }} failed*\n"
    "run {{ run_id }}, try {{ ti.try_number }}"
    "{% if data_interval_start is defined and data_interval_start %}"
    ", data interval {{ data_interval_start }} .. {{ data_interval_end }}{% endif %}\n"
    "{% if error %}```{{ error }}```\n{% endif %}"
    "log: {{ ti.log_url }}"
)
#: Alert of a failed DAG run (the context of its last failed task, when there is one).
DAG_FAILURE_TEXT = (
    ":red_circle: *Skiff: run {{ run_id }} of {{ dag.dag_id }} failed* ({{ reason }})"
    "{% if ti is defined %}\nlast failed task {{ ti.task_id }}, try {{ ti.try_number }}\n"
    "log: {{ ti.log_url }}{% endif %}"
)
#: Alert of a run past its Deadline Alert (the deadline's context: ``dag_run`` and ``deadline``).
RUN_DURATION_TEXT = (
    ":hourglass: *Skiff: run {{ dag_run.dag_run_id }} of {{ dag_run.dag_id }} is still "
    "{{ dag_run.state }}* past its deadline {{ deadline.deadline_time }} "
    "(queued at {{ dag_run.queued_at }})\n"
    "run: {{ base_url }}/dags/{{ dag_run.dag_id }}/runs/{{ dag_run.dag_run_id | urlencode }}"
)


def error_summary(
    error: BaseException | str | None, max_lines: int = 8, max_chars: int = 1500
) -> str:
    """The first lines of a task's error for an alert, escaped for Slack.

    ``Type: message`` of an exception (its traceback stays in the task log), cut after
    ``max_lines`` lines or ``max_chars`` characters with a note saying so; ``""`` without error.
    """
    if error is None:
        return ""
    if isinstance(error, BaseException):
        error = "".join(traceback.format_exception_only(error))
    lines = error.strip().splitlines()
    head = "\n".join(lines[:max_lines])[:max_chars].rstrip()
    if head != "\n".join(lines):
        head += "\n… (cut; the whole error is in the task log)"
    return head.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SkiffAlertNotifier(BaseNotifier):
    """Send an alert to Slack through the connection ``slack_conn_id``, or log it without one.

    Shaped like the Slack provider's ``SlackWebhookNotifier`` (``text`` templated with the
    callback's context, hooks built on use, ``notify`` one hook call). The connection is looked
    up when an alert is sent: when it exists, ``SlackWebhookHook`` posts ``{"text": ...}`` to its
    webhook; when not, :class:`~hooks.log_alerts.LogWebhookHook` logs the text. A failed send
    (Slack down, an error status, a bad connection) is logged with the alert's text and never
    raised, so the failure being reported stays the task's or the run's own.

    :param text: the alert, Slack mrkdwn (templated). Besides the callback's context it can use
        ``error`` (:func:`error_summary` of ``exception``) and ``base_url`` (Airflow's UI).
    :param slack_conn_id: the Slack Incoming Webhook connection (type ``slackwebhook``: the
        webhook URL in its password). Default ``slack_alerts``.
    :param error_lines: lines of the error an alert shows at most. Default 8.
    :param logger_name: logger of logged alerts and of failed sends. Default ``skiff.alerts``.
    """

    template_fields: Sequence[str] = ("text",)

    def __init__(
        self,
        *,
        text: str,
        slack_conn_id: str = "slack_alerts",
        error_lines: int = 8,
        logger_name: str = "skiff.alerts",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.text = text
        self.slack_conn_id = slack_conn_id
        self.error_lines = error_lines
        self.logger_name = logger_name

    @cached_property
    def log_hook(self) -> LogWebhookHook:
        """The log hook: alerts without Slack, and those Slack did not take."""
        return LogWebhookHook(logger_name=self.logger_name)

    def slack_hook(self) -> SlackWebhookHook | None:
        """The Slack webhook hook, or ``None`` while the connection does not exist."""
        # imported here: slack_sdk's async client pulls in aiohttp, kept out of DAG parsing
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        try:
            SlackWebhookHook.get_connection(self.slack_conn_id)
        except AirflowNotFoundException:
            return None
        return SlackWebhookHook(slack_webhook_conn_id=self.slack_conn_id)

    def render_template_fields(
        self, context: Context, jinja_env: jinja2.Environment | None = None
    ) -> None:
        """Render ``text`` with the context plus ``error`` and ``base_url``; without the DAG's
        Jinja environment (``dag.test()`` hands DAG callbacks a serialized DAG, deadlines have
        no DAG), with Airflow's default one."""
        if jinja_env is None and not hasattr(context.get("dag"), "get_template_env"):
            jinja_env = self.get_template_env(dag=None)
        extras = {
            "error": error_summary(context.get("exception"), max_lines=self.error_lines),
            "base_url": conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/"),
        }
        super().render_template_fields({**context, **extras}, jinja_env)

    def notify(self, context: Context) -> None:
        """Post the rendered text to Slack when its connection exists, else log it."""
        alerts = logging.getLogger(self.logger_name)
        try:
            slack = self.slack_hook()
            if slack is not None:
                slack.send(text=self.text)
                alerts.info("Alert sent to Slack (connection %r).", self.slack_conn_id)
                return
        except Exception as err:
            alerts.error(
                "Could not send the alert to Slack (connection %r), logging it instead: %s",
                self.slack_conn_id,
                err,
            )
        self.log_hook.send(text=self.text)

    def __call__(self, *args: Any) -> None:
        # BaseNotifier renders template fields in place; render a copy, so that one notifier
        # object (a DAG's, or a task's default_args in dag.test) serves many callbacks.
        BaseNotifier.__call__(copy.copy(self), *args)
