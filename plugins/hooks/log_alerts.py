"""Hook "sending" alerts as log lines: the embedded stand-in for a Slack incoming webhook."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk.bases.hook import BaseHook

__all__ = ["LogWebhookHook"]


class LogWebhookHook(BaseHook):
    """Deliver alert messages to a logger, with the call shape of ``SlackWebhookHook.send``.

    Skiff's embedded default for alerts: no account, no network, the alert lands in the task
    (or DAG processor) log and in any log shipping behind it.
    :class:`~notifiers.skiff_alerts.SkiffAlertNotifier` sends through it while the Slack
    connection does not exist, and when Slack does not take an alert.

    :param logger_name: the logger the alerts go to. Default ``skiff.alerts``.
    :param level: the level they are logged at. Default ``ERROR``.
    """

    hook_name = "Skiff log webhook"

    def __init__(self, logger_name: str = "skiff.alerts", level: int = logging.ERROR) -> None:
        super().__init__()
        self.alerts = logging.getLogger(logger_name)
        self.level = level

    def send(self, *, text: str, **extra: Any) -> str:
        """Log one alert.

        :param text: the alert's text (several lines allowed).
        :param extra: other webhook fields (blocks, attachments …), logged when present.
        :return: the text sent.
        """
        fields = {k: v for k, v in extra.items() if v is not None}
        self.alerts.log(self.level, "ALERT %s%s", text, f"\n{fields}" if fields else "")
        return text
