"""The service's OpenAPI spec and its docs page.

`/predict` reads its body itself (to check each row on its own), so FastAPI cannot infer a
request body: the spec describes it from the served model, its signature and its feature
service's request fields, and follows a hot swap. Schema-driven fuzzers (schemathesis) and
client generators then send real rows.

`/docs` is Swagger UI served from the `swagger-ui-bundle-v2` package's files (Swagger UI
5, which reads OpenAPI 3.1), so it works offline: the page names no outside URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from esteira.models import Column

if TYPE_CHECKING:
    from fastapi import FastAPI

    from esteira.models import LoadedModel
    from esteira.serving.loaded import ModelSlot

ASSETS = "/docs/assets"
_JSON_TYPES = {"double": "number", "float": "number", "long": "number", "integer": "number",
               "string": "string", "boolean": "boolean"}  # fmt: skip


def predict_body_schema(model: LoadedModel | None, max_rows: int) -> dict[str, Any]:
    """JSON schema of a /predict body for `model` (a generic one when none is loaded)."""
    if model is None:
        rows: dict[str, Any] = {"type": "object", "description": "no model is loaded yet"}
    else:
        rows = _row_schema(model.columns, f"the inputs of {model.name} version {model.version}")
        service = model.service
        if service is not None:
            fields = [Column(name, kind, required=True) for name, kind in service.request]
            rows = {"anyOf": [rows, _row_schema(fields, f"the request fields of feature "
                                                f"service '{service.name}'; its features are "
                                                "looked up")]}  # fmt: skip
    return {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": rows}
        },
    }


def _row_schema(columns: list[Column], description: str) -> dict[str, Any]:
    properties = {}
    for c in columns:
        schema: dict[str, Any] = {"type": _JSON_TYPES.get(c.kind, "string")}
        if c.kind == "datetime":
            schema["format"] = "date-time"
        if not c.required:  # a column the model may be given empty
            schema["type"] = [schema["type"], "null"]
        properties[c.name] = schema
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": [c.name for c in columns if c.required],
        "additionalProperties": False,
    }


def describe_predict_body(app: FastAPI, slot: ModelSlot, max_rows: int) -> None:
    """Make the app's spec carry /predict's body for the model the slot serves now."""
    from fastapi.openapi.utils import get_openapi

    built: dict[str | None, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        model = slot.current
        version = model.version if model is not None else None
        if version not in built:  # once per version served
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            body = predict_body_schema(model, max_rows)
            spec["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
            built.clear()
            built[version] = spec
        return built[version]

    app.openapi = openapi  # type: ignore[method-assign]


def add_offline_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the installed package's files, nothing from a CDN."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from starlette.staticfiles import StaticFiles

    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path)))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the public validator
        )
