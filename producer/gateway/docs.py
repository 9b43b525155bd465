"""/docs (Swagger UI) and /redoc, served with their scripts from this server (no CDN).

add_docs_pages(app)   # the app is built with docs_url=None and redoc_url=None
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_ASSETS = "/docs/assets"
# The docs pages may load nothing from another host, whatever their scripts ask for (ReDoc
# asks cdn.redoc.ly for its logo): offline they lose nothing, online they tell no one.
# Inline script and style: FastAPI's pages start Swagger UI inline; ReDoc uses blob workers.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def add_docs_pages(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc, with their scripts and styles served from the
    fastapi-offline package's copy of them: the pages work without the internet."""
    static = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    title = f"{app.title} - docs"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") + DOCS_ASSETS
        page = get_swagger_ui_html(
            openapi_url=request.scope.get("root_path", "") + str(app.openapi_url),
            title=title,
            swagger_js_url=f"{root}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/swagger-ui.css",
            swagger_favicon_url=f"{root}/favicon.png",
            # No badge from the public validator: it would send it this schema's URL.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "") + DOCS_ASSETS
        page = get_redoc_html(
            openapi_url=request.scope.get("root_path", "") + str(app.openapi_url),
            title=title,
            redoc_js_url=f"{root}/redoc.standalone.js",
            redoc_favicon_url=f"{root}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    # Plain routes, as FastAPI adds its own docs: outside the schema, open to anyone.
    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
