"""Skiff's Airflow plugin: the run-progress listener and the "Skiff" page of the UI.

The one file of ``plugins/`` the plugin loader imports (see ``.airflowignore``); it stays
cheap to import, since every Airflow process loads it: the page's app (``ui.skiff_page``,
FastAPI) is imported on the page's first request, in the api-server only.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from listeners import progress

__all__ = ["SkiffPlugin", "LazyASGIApp"]

#: Where Airflow's api-server mounts the page (and the UI's frame points).
PAGE_PREFIX = "/skiff"


class LazyASGIApp:
    """An ASGI app built on its first request from ``module:factory``.

    Airflow mounts plugin apps in the api-server; every other process only imports this
    file, so the page's dependencies stay out of them.

    :param target: ``"package.module:factory"``; the factory returns the ASGI app.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self._app: Any = None

    def app(self) -> Any:
        """The real app (built once)."""
        if self._app is None:
            module, _, factory = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), factory)()
        return self._app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.app()(scope, receive, send)


class SkiffPlugin(AirflowPlugin):
    """Registers :mod:`listeners.progress` (it writes only when ``SKIFF_PROGRESS_FILE`` is set)
    and the Skiff page: ``ui.skiff_page`` at ``/skiff``, "Skiff" in the UI's navigation."""

    name = "skiff"
    listeners = [progress]
    fastapi_apps = [{"app": LazyASGIApp("ui.skiff_page:create_app"), "url_prefix": PAGE_PREFIX,
                     "name": "Skiff page"}]
    external_views = [{
        "name": "Skiff",
        "href": f"{PAGE_PREFIX}/",
        "url_route": "skiff",
        "destination": "nav",
        "nav_top_level": True,
    }]
