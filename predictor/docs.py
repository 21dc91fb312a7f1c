"""The course's `/docs` (Swagger UI) and `/redoc` pages, served from the image.

FastAPI's defaults load Swagger UI and ReDoc from a public CDN: in a cluster without internet
access, behind a strict proxy or under a content-security policy, the page stays blank. The
assets here come from the pinned PyPI package `fastapi-offline` (its `static/` folder: Swagger
UI 5, ReDoc 2; Apache-2.0 and MIT), served under `ASSET_PREFIX` by one route per file, so no
other path under it answers. Each page carries a Content-Security-Policy that lets it load
only those files and talk only to this origin: FastAPI's one inline script (Swagger UI's
set-up) is allowed by its SHA-256, not by `'unsafe-inline'`.

The auth proxy serves exactly these paths without a token (`PUBLIC_DOCS`, its `routes.py`
lists them too; a unit test keeps the two lists equal).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from .contract import MODEL_NAME

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"  # FastAPI's default, which KServe's app keeps
ASSET_PREFIX = "/docs/assets/"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Every path this module answers: what a browser needs to show both pages.
PUBLIC_PATHS = (
    DOCS_URL,
    REDOC_URL,
    OPENAPI_URL,
    *(ASSET_PREFIX + name for name in ASSETS),
)
# The files are those of one pinned package version: a day's caching costs no staleness.
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def asset_folder() -> Path:
    return Path(str(resources.files("fastapi_offline") / "static"))


def inline_script_hashes(html: str) -> list[str]:
    """CSP source expressions for each inline `<script>` of a page (a `src` script has no
    body to hash): the exact bytes the browser will hash."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def content_security_policy(script_hashes: list[str], connect: list[str], worker: bool) -> str:
    """Only this origin's files; inline scripts by hash only. Inline styles stay allowed:
    Swagger UI and ReDoc set styles at run time, and a style cannot run code. ReDoc's search
    runs in a worker it makes from a blob."""
    directives = [
        "default-src 'none'",
        "script-src " + " ".join(["'self'", *script_hashes]),
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src " + " ".join(["'self'", *connect]),
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    if worker:
        directives.append("worker-src blob:")
    return "; ".join(directives)


@dataclass(frozen=True)
class Page:
    """A page's HTML and headers, made once; a new response per request (middlewares such as
    GZip edit a response's headers in place, which a shared response would keep)."""

    html: str
    headers: dict[str, str]

    def response(self) -> HTMLResponse:
        return HTMLResponse(self.html, headers=dict(self.headers))


def _page(html: str, connect: list[str], worker: bool = False) -> Page:
    policy = content_security_policy(inline_script_hashes(html), connect, worker)
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return Page(html, headers)


def swagger_page(token_url: str = "") -> Page:
    """Swagger UI with the local assets; with a token URL, Authorize also offers OAuth2 client
    credentials, whose token request goes to that origin (and only there)."""
    html = get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=f"{MODEL_NAME} - Swagger UI",
        swagger_js_url=ASSET_PREFIX + "swagger-ui-bundle.js",
        swagger_css_url=ASSET_PREFIX + "swagger-ui.css",
        swagger_favicon_url=ASSET_PREFIX + "favicon.png",
        oauth2_redirect_url=None,  # client credentials need no redirect page
        # validatorUrl: Swagger UI would otherwise send the document to swagger.io's validator.
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
    ).body
    return _page(bytes(html).decode(), [origin_of(token_url)] if token_url else [])


def redoc_page() -> Page:
    html = get_redoc_html(
        openapi_url=OPENAPI_URL,
        title=f"{MODEL_NAME} - ReDoc",
        redoc_js_url=ASSET_PREFIX + "redoc.standalone.js",
        redoc_favicon_url=ASSET_PREFIX + "favicon.png",
        with_google_fonts=False,
    ).body
    return _page(bytes(html).decode(), [], worker=True)


def origin_of(url: str) -> str:
    """scheme://host[:port], rebuilt from its parts (never the raw network location)."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def install_docs(app: FastAPI, token_url: str = "") -> None:
    """The two pages and their assets; GET and HEAD only (FastAPI's own docs routes are off:
    KServe's app is made with `docs_url=None` unless `--enable_docs_url`)."""
    swagger, redoc = swagger_page(token_url), redoc_page()

    @app.api_route(DOCS_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger.response()

    @app.api_route(REDOC_URL, methods=["GET", "HEAD"], include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return redoc.response()

    folder = asset_folder()
    for name, media_type in ASSETS.items():
        _install_asset(app, folder / name, media_type)


def _install_asset(app: FastAPI, path: Path, media_type: str) -> None:
    """One file, read and gzipped once at start-up: anyone may fetch these without a token,
    so none of them may cost the predictor's event loop a compression per request (the
    Swagger bundle is 1.5 MB: ~40 ms of gzip). A client that sent the ETag gets a 304."""
    if not path.is_file():  # a package upgrade that moved its files: fail at start, by name
        raise FileNotFoundError(f"documentation asset {path} is missing (fastapi-offline)")
    plain = path.read_bytes()
    packed = gzip.compress(plain, compresslevel=9, mtime=0)
    etag = '"' + hashlib.sha256(plain).hexdigest()[:32] + '"'
    common = {**ASSET_HEADERS, "ETag": etag}  # (GZip middleware adds Vary: Accept-Encoding)

    async def asset(request: Request) -> Response:
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=common)
        if "gzip" in request.headers.get("accept-encoding", "").lower():
            # Content-Encoding set: Starlette's GZip middleware leaves the answer as it is.
            headers = {**common, "Content-Encoding": "gzip"}
            return Response(packed, media_type=media_type, headers=headers)
        return Response(plain, media_type=media_type, headers=common)

    app.add_api_route(
        ASSET_PREFIX + path.name, asset, methods=["GET", "HEAD"], include_in_schema=False
    )
