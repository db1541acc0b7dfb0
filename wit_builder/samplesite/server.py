"""Serve a generated sample site with aiohttp."""

from __future__ import annotations

import html

from aiohttp import web

from wit_builder.localserver import BackgroundServer
from wit_builder.samplesite.build import SITE_NAME, Site

_NOT_FOUND_PAGE = (
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Page not found · {site}</title></head>\n"
    "<body><img src=\"/static/logo.png\" alt=\"logo\"><h1>Page not found</h1><p>{path} does not exist.</p>"
    "<p><a href=\"/\">Back to the home page</a></p></body></html>\n"
)


def site_app(site: Site, request_log: list[str] | None = None) -> web.Application:
    """Return an application that serves the site's pages, photos, assets and robots.txt.

    Photos are served from their files as image/jpeg, pages as UTF-8 HTML. Paths that the
    site does not contain return 404. When ``request_log`` is given, the path and query of
    every request are appended to it, so a test can check what a crawler fetched.
    """

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if request_log is not None:
            request_log.append(request.path_qs)

        if path == "/robots.txt":
            return web.Response(text=site.robots_txt, content_type="text/plain", charset="utf-8")
        if path in site.pages:
            return web.Response(text=site.pages[path], content_type="text/html", charset="utf-8")
        if path in site.images:
            return web.FileResponse(site.images[path], headers={"Content-Type": "image/jpeg"})
        if path in site.assets:
            asset = site.assets[path]
            return web.Response(body=asset.body, content_type=asset.content_type)
        if path in site.redirects:
            raise web.HTTPMovedPermanently(location=site.redirects[path])

        body = _NOT_FOUND_PAGE.format(site=SITE_NAME, path=html.escape(path))
        return web.Response(text=body, status=404, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/{path:.*}", handle)
    return app


def serve_site(site: Site, request_log: list[str] | None = None) -> BackgroundServer:
    """Return a (not yet started) loopback server for the site; use it as a context manager."""
    return BackgroundServer(lambda: site_app(site, request_log))
