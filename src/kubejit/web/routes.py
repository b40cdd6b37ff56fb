"""Mount the pages on the broker's app: the routers, the static files, and the context they run on."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kubejit.web import admin_pages, auth_pages, pages
from kubejit.web.context import WebContext
from kubejit.web.render import STATIC


def install(app: FastAPI, web: WebContext) -> None:
    app.state.web = web
    app.include_router(auth_pages.router)
    app.include_router(pages.router)
    app.include_router(admin_pages.router)
    app.mount("/ui/static", StaticFiles(directory=str(STATIC)), name="ui-static")
