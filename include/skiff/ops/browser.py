"""Airflow's UI in headless Chromium (Playwright), as a person uses it: for the tests and the docs.

:func:`chromium` starts Debian's ``chromium`` (``apt-get install chromium``; ``make test``
installs it when missing) through Playwright; :func:`sign_in` fills the simple auth
manager's login form; :func:`open_trigger_form` opens a DAG's trigger form;
:func:`expand_task_groups` opens every task group of a run's graph. ``tests/e2e`` and
``docs/screenshot.py`` share them. Playwright is imported when a browser starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.exceptions import SkiffError

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from skiff.ops.local_airflow import LocalAirflow

__all__ = ["CHROMIUM_FLAGS", "BrowserError", "chromium_path", "chromium", "sign_in",
           "open_trigger_form", "expand_task_groups"]

#: Headless Chromium as root, offline, quiet: no sandbox (root), GPU, QUIC or phoning home.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]


class BrowserError(SkiffError):
    """No Chromium or no Playwright: the message says what to install."""


def chromium_path() -> Path:
    """Debian's Chromium: ``chromium`` on the PATH.

    :raises BrowserError: none found (``apt-get install chromium``).
    """
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise BrowserError("No Chromium on the PATH: apt-get install chromium (make test "
                           "installs it).")
    return Path(found)


@contextmanager
def chromium(profile: str | Path, *, width: int = 1400, height: int = 900,
             scale: float = 1.0, executable: str | Path | None = None
             ) -> Iterator[BrowserContext]:
    """Headless Chromium with its profile in ``profile``, closed on exit.

    :param profile: the profile folder (cookies: the login).
    :param width: viewport width, CSS pixels.
    :param height: viewport height.
    :param scale: device scale factor (1.5 for the docs' sharper pictures).
    :param executable: Chromium; default :func:`chromium_path`.
    :raises BrowserError: no Playwright (``pip install -r requirements-dev.txt``) or Chromium.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserError("No Playwright: pip install -r requirements-dev.txt") from None
    executable = executable or chromium_path()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(executable), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height}, device_scale_factor=scale)
        try:
            yield context
        finally:
            context.close()


def sign_in(page: Page, airflow: LocalAirflow) -> None:
    """The simple auth manager's login form, as a person fills it; ends on the home page."""
    page.goto(airflow.url + "/")  # redirects to the login form
    page.get_by_label("Username").fill(airflow.user)
    page.get_by_label("Password").fill(airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(airflow.url + "/")


def open_trigger_form(page: Page, airflow: LocalAirflow, dag_id: str) -> Any:
    """Open ``dag_id``'s trigger form; returns the dialog (a Playwright locator)."""
    page.goto(f"{airflow.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    return dialog


def expand_task_groups(page: Page) -> None:
    """Open every task group of the graph on the page.

    The graph's "Expand all task groups" button is disabled while every group is open
    already (the UI remembers the groups a user opened), and absent without groups: clicking
    it then would wait for it forever. It is clicked only when enabled.
    """
    button = page.get_by_role("button", name="Expand all task groups")
    if button.count() and button.first.is_enabled():
        button.first.click()
