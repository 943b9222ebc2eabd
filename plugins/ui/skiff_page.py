"""The Skiff page of Airflow's UI: a FastAPI app serving the monitor snapshot as HTML.

``skiff_plugin.py`` mounts it at ``/skiff`` in Airflow's api-server and lists it in the UI's
navigation ("Skiff"), which shows it in a frame. Each request needs Airflow's login, as the
UI's own pages: the JWT the login sets (the ``_token`` cookie the frame sends) or a bearer
token, checked by Airflow's auth manager, and read access to the skiff_monitor DAG, whose
data it shows. Without a token, a browser is sent to the login page.

It reads only ``$SKIFF_MONITOR_DIR/snapshot.json`` (:mod:`skiff.monitor.snapshot`), written by
skiff_monitor: never the warehouse, whose one writer lock skiff_hourly may hold.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

__all__ = ["create_app", "require_reader", "MONITOR_DAG_ID"]

#: The DAG whose read access the page requires (it shows that DAG's output).
MONITOR_DAG_ID = "skiff_monitor"


def _token(request: Request) -> str | None:
    """The request's JWT: a bearer token, else the UI's login cookie."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return request.cookies.get(COOKIE_NAME_JWT_TOKEN)


async def require_reader(request: Request) -> Any:
    """FastAPI dependency: the signed-in user, allowed to read skiff_monitor.

    :raises HTTPException: 401 without a valid token (a browser asking for HTML is sent to
        the login page instead), 403 without access to the DAG.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    token = _token(request)
    if not token and "text/html" in request.headers.get("accept", ""):
        login = get_auth_manager().get_url_login(next_url=str(request.url))
        raise HTTPException(status_code=307, headers={"Location": login})
    user = await resolve_user_from_token(token)
    if not get_auth_manager().is_authorized_dag(method="GET", user=user,
                                                details=DagDetails(id=MONITOR_DAG_ID)):
        raise HTTPException(status_code=403, detail=f"No read access to {MONITOR_DAG_ID}.")
    return user


def _snapshot() -> dict[str, Any] | None:
    from skiff.config import MonitorConfig
    from skiff.monitor import read_snapshot

    return read_snapshot(MonitorConfig.from_env().snapshot_dir)


def create_app() -> FastAPI:
    """The page's app: ``GET /`` (the page) and ``GET /snapshot.json`` (its data)."""
    app = FastAPI(title="Skiff", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _redirect_or_error(request: Request, exc: HTTPException) -> Any:
        if exc.status_code == 307:
            return RedirectResponse(exc.headers["Location"], status_code=307)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(require_reader)])
    def page() -> HTMLResponse:
        from skiff.monitor import render_page

        try:
            doc = _snapshot()
        except ValueError as exc:
            return HTMLResponse(f"<p>{exc}</p>", status_code=500)
        return HTMLResponse(render_page(doc), headers={"Cache-Control": "no-store"})

    @app.get("/snapshot.json", dependencies=[Depends(require_reader)])
    def snapshot() -> JSONResponse:
        doc = _snapshot()
        if doc is None:
            raise HTTPException(status_code=404, detail="No monitor snapshot yet: skiff_monitor "
                                                        "writes one after its first run.")
        return JSONResponse(doc, headers={"Cache-Control": "no-store"})

    return app
