"""The Skiff page's app: the plugin's registration, login required, the snapshot as HTML and JSON.

Airflow's auth manager is replaced by a stand-in that knows one token; the real one (the
simple auth manager, through the login form) is the UI test's (``tests/e2e/test_airflow_ui.py``).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import HTTPException
from starlette.testclient import TestClient

from skiff.monitor import render_page, write_snapshot

TOKEN = "good-token"


class StandInAuthManager:
    def __init__(self, readers: set[str]) -> None:
        self.readers = readers
        self.asked: list[tuple[str, str]] = []

    def get_url_login(self, **kwargs: str) -> str:
        return f"/auth/login?next={kwargs['next_url']}"

    def is_authorized_dag(self, *, method: str, user: SimpleNamespace, details=None, **_) -> bool:
        self.asked.append((method, details.id))
        return user.name in self.readers


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> TestClient:
    import airflow.api_fastapi.app as app_module
    import airflow.api_fastapi.core_api.security as security

    async def resolve(token: str | None) -> SimpleNamespace:
        if token != TOKEN:
            raise HTTPException(status_code=401, detail="Not authenticated")
        return SimpleNamespace(name="admin")

    manager = StandInAuthManager({"admin"})
    monkeypatch.setattr(security, "resolve_user_from_token", resolve)
    monkeypatch.setattr(app_module, "get_auth_manager", lambda: manager)
    monkeypatch.setenv("SKIFF_MONITOR_DIR", str(tmp_path / "monitor"))
    from skiff_plugin import SkiffPlugin

    (registration,) = SkiffPlugin.fastapi_apps
    client = TestClient(registration["app"])  # the lazy app, as Airflow mounts it
    client.manager = manager
    return client


def test_the_plugin_registers_the_app_and_the_nav_entry() -> None:
    from skiff_plugin import SkiffPlugin

    (app,) = SkiffPlugin.fastapi_apps
    (view,) = SkiffPlugin.external_views
    assert app["url_prefix"] == "/skiff" and view["href"] == "/skiff/"
    assert (view["name"], view["destination"], view["url_route"]) == ("Skiff", "nav", "skiff")


def test_login_is_required(client: TestClient) -> None:
    assert client.get("/").status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer bad"}).status_code == 401
    browser = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 307
    assert browser.headers["location"].startswith("/auth/login?next=http://testserver/")
    client.manager.readers.clear()  # signed in, but not allowed to read skiff_monitor
    client.cookies.set("_token", TOKEN)
    denied = client.get("/")
    assert denied.status_code == 403 and "skiff_monitor" in denied.json()["detail"]
    assert client.manager.asked[-1] == ("GET", "skiff_monitor")


def test_the_page_and_its_data(client: TestClient, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = client.get("/", headers=auth)
    assert before.status_code == 200 and "No monitor snapshot yet" in before.text
    assert client.get("/snapshot.json", headers=auth).status_code == 404
    doc = {"generated_at": "2026-11-27T12:00:00+00:00", "window_hours": 3, "history_days": 7,
           "thresholds": {"psi_max": 0.2}, "errors": [],
           "models": {"rec": {"champion": None, "history": [], "decisions": [], "serving": [],
                              "quality": [], "drift": [], "breaches": ["drift: PSI 0.5"]}}}
    write_snapshot(doc, tmp_path / "monitor")
    client.cookies.set("_token", TOKEN)  # the UI's frame sends the login cookie
    page = client.get("/")
    assert page.status_code == 200 and page.text == render_page(doc)
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/snapshot.json", headers=auth).json() == doc
