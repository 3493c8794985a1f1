"""The dashboard's web application: one GET route per view, each page rendered on the
server from the stores as they are at that request. Nothing here writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from esteira.dashboard import pages, usage_pages
from esteira.dashboard.data import Environment, MlflowLinks
from esteira.dashboard.layout import Place, empty, page
from esteira.errors import EsteiraError, NotFound, first_line

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

View = Callable[[Place, Environment], Markup]
VIEWS: dict[str, tuple[str, View]] = {
    "/": ("overview", pages.overview),
    "/runs": ("pipeline runs", pages.runs),
    "/ct": ("CT runs", pages.ct_runs),
    "/gates": ("gates", pages.gates),
    "/monitoring": ("monitoring", usage_pages.monitoring),
    "/serving": ("serving", usage_pages.serving),
}


class Dashboard:
    """The project's environments, opened read-only on first look and kept."""

    def __init__(self, root: Path, shown_root: str, env: str, mlflow_url: str) -> None:
        from esteira.config import environments_of, load_settings

        self.root = root
        self.shown_root = shown_root
        self.default_env = env
        self.environments = list(environments_of(root))
        self.project = load_settings(root).name
        self.mlflow = MlflowLinks(mlflow_url)
        self._opened: dict[str, Environment] = {}
        self._lock = threading.Lock()

    def environment(self, name: str | None) -> Environment:
        name = name or self.default_env
        if name not in self.environments:
            raise NotFound(f"no environment '{name}' (environments: "
                           f"{', '.join(self.environments)})")  # fmt: skip
        with self._lock:
            if name not in self._opened:
                self._opened[name] = Environment(self.root, name)
            return self._opened[name]

    def place(self, env: Environment, model: str | None) -> Place:
        models = env.models()
        if model is not None and model not in models:
            raise NotFound(f"no model '{model}' in {env.name} (models: "
                           f"{', '.join(models) or 'none yet'})")  # fmt: skip
        chosen = model or env.settings.ct.model or (models[0] if models else None)
        return Place(self.project, self.shown_root, env.name, self.environments, chosen,
                     models, self.mlflow)  # fmt: skip

    def plain_place(self, env: str | None) -> Place:
        """Where an error page is: no store is read to draw it."""
        name = env if env in self.environments else self.default_env
        return Place(self.project, self.shown_root, name, self.environments, None, [],
                     self.mlflow)  # fmt: skip


def create_app(root: Path, env: str, mlflow_url: str, shown_root: str | None = None) -> FastAPI:
    """The dashboard of the project at `root`, showing environment `env` first."""
    board = Dashboard(root, shown_root or str(root), env, mlflow_url)

    @asynccontextmanager
    async def warm(app: FastAPI) -> AsyncIterator[None]:
        # MLflow takes seconds to import: meanwhile the port already answers.
        threading.Thread(target=lambda: __import__("mlflow"), daemon=True).start()
        yield

    app = FastAPI(title="esteira dashboard", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=warm)  # fmt: skip
    for path, (name, view) in VIEWS.items():
        app.add_api_route(path, _route(board, name, view), methods=["GET"],
                          response_class=HTMLResponse, name=name)  # fmt: skip

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def one_run(run_id: str, env: str | None = None, model: str | None = None) -> str:
        opened = board.environment(env)
        place = board.place(opened, model)
        return page(place, "pipeline runs", f"run {run_id[:12]}",
                    pages.run(place, opened, run_id))  # fmt: skip

    @app.exception_handler(EsteiraError)
    def told(request: Request, error: EsteiraError) -> HTMLResponse:
        code = 404 if isinstance(error, NotFound) else 503
        return _error_page(board, request, str(error), code)

    @app.exception_handler(Exception)
    def failed(request: Request, error: Exception) -> HTMLResponse:
        # uvicorn logs the traceback; the page says what failed in one line
        told = f"this page failed: {type(error).__name__}: {first_line(error)}"
        return _error_page(board, request, told, 500)

    return app


def _error_page(board: Dashboard, request: Request, message: str, code: int) -> HTMLResponse:
    place = board.plain_place(request.query_params.get("env"))
    body = Markup("<h1>Not shown</h1>") + empty(message)
    return HTMLResponse(page(place, "", "not shown", body), status_code=code)


def _route(board: Dashboard, name: str, view: View) -> Callable[..., str]:
    def route(env: str | None = None, model: str | None = None) -> str:
        opened = board.environment(env)
        place = board.place(opened, model)
        return page(place, name, name, view(place, opened))

    return route
