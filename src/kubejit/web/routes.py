"""Mount the pages on the broker's app: the routers, the static files, and the context they run on."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kubejit.errors import NotFound
from kubejit.web import admin_pages, auth_pages, pages
from kubejit.web.context import WebContext
from kubejit.web.guard import PageRoute
from kubejit.web.render import STATIC

#: Last: any other path under /ui/ is a problem page, not the API's JSON 404.
_rest = APIRouter(route_class=PageRoute, include_in_schema=False)


@_rest.get("/ui")
def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=308)


@_rest.get("/ui/{rest:path}")
def unknown_page(rest: str) -> Response:
    raise NotFound(f"there is no page /ui/{rest[:100]}", hint="Start from /ui/.")


def install(app: FastAPI, web: WebContext) -> None:
    app.state.web = web
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")  # before the catch-all
    app.include_router(auth_pages.router)
    app.include_router(pages.router)
    app.include_router(admin_pages.router)
    app.include_router(_rest)
