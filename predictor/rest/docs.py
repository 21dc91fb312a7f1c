"""The course's `/docs` (Swagger UI) and `/redoc` pages, served from the image.

FastAPI's defaults load Swagger UI and ReDoc from a public CDN: in a cluster without internet
access, behind a strict proxy or under a content-security policy, the page stays blank. The
assets here come from the pinned PyPI package `fastapi-offline` (its `static/` folder: Swagger
UI 5, ReDoc 2; Apache-2.0 and MIT), served under `ASSET_PREFIX` by one route per file, so no
other path under it answers. Each page carries a Content-Security-Policy that lets it load
only those files and talk only to this origin: FastAPI's one inline script (Swagger UI's
set-up) is allowed by its SHA-256, not by `'unsafe-inline'`.

The auth proxy serves exactly these paths without a token (`PUBLIC_DOCS`, its `routes.py`
lists them too; a unit test keeps the two lists equal). Anyone may fetch them, so none may cost
the event loop work per request: the asset files and the OpenAPI document are serialized and
gzipped once (`Encoded`), each form with its own ETag, and revalidated with a 304.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..contract import MODEL_NAME

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
# The document can change with a new image: a cache asks each time (a 304 costs nothing).
OPENAPI_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
GZIP_CODINGS = ("gzip", "x-gzip")  # RFC 9110 8.4.1.3: x-gzip is the same coding
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


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an `Accept-Encoding` value (RFC 9110 12.5.3) makes gzip acceptable: named as
    `gzip` or `x-gzip`, else covered by `*`, with a weight above 0. A substring test (Starlette's
    GZip middleware) takes `gzip;q=0`, a refusal, for a yes. A weight that is not a number from
    0 to 1 counts as a refusal: the plain bytes are always acceptable, so doubt costs nothing.
    An empty value gets the plain bytes too, as from every common server."""
    named: float | None = None
    wildcard: float | None = None
    for element in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in element.split(";"))
        weight = _weight(parameters)
        if coding.lower() in GZIP_CODINGS:
            named = weight if named is None else max(named, weight)
        elif coding == "*":
            wildcard = weight
    chosen = named if named is not None else wildcard
    return chosen is not None and chosen > 0


def _weight(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                weight = float(value.strip())
            except ValueError:
                return 0.0
            return weight if 0 <= weight <= 1 else 0.0  # NaN fails both comparisons
    return 1.0


def etag_matches(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` (RFC 9110 13.1.2): `*`, or a list of entity tags compared weakly (a `W/`
    prefix ignored, as that header's comparison is)."""
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


def one_vary(values: list[str]) -> str:
    """`Vary` values merged, each field name once (first spelling kept)."""
    names: dict[str, str] = {}
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if name:
                names.setdefault(name.lower(), name)
    return ", ".join(names.values())


def _joined(headers: Headers, name: str) -> str:
    """A header sent on several lines is one comma-separated list (RFC 9110 5.3)."""
    return ", ".join(headers.getlist(name))


@dataclass(frozen=True)
class Encoded:
    """One body in both its forms, made once: the plain bytes and their gzip. Each form has its
    own strong ETag (the gzip one suffixed `-gzip` inside the quotes, as Apache and nginx do):
    different bytes under one strong ETag let a cache revalidate one form with the other's tag
    and keep it. Both forms say `Vary: Accept-Encoding`, so a shared cache keeps them apart. A
    304 answers only the ETag of the form this client would get."""

    plain: bytes
    packed: bytes
    media_type: str
    headers: Mapping[str, str]
    etag: str

    @classmethod
    def of(cls, plain: bytes, media_type: str, headers: Mapping[str, str]) -> Encoded:
        packed = gzip.compress(plain, compresslevel=9, mtime=0)
        etag = '"' + hashlib.sha256(plain).hexdigest()[:32] + '"'
        return cls(plain, packed, media_type, dict(headers), etag)

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gzip"'

    def response(self, request: Request) -> Response:
        gzipped = accepts_gzip(_joined(request.headers, "accept-encoding"))
        etag = self.gzip_etag if gzipped else self.etag
        headers = {**self.headers, "ETag": etag, "Vary": "Accept-Encoding"}
        if etag_matches(_joined(request.headers, "if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        if gzipped:
            # Content-Encoding set: Starlette's GZip middleware leaves the answer as it is.
            headers["Content-Encoding"] = "gzip"
            return Response(self.packed, media_type=self.media_type, headers=headers)
        return Response(self.plain, media_type=self.media_type, headers=headers)


class Negotiated:
    """ASGI middleware for the public docs paths, outside Starlette's GZip middleware (installed
    after it: the last added is the outermost). That middleware chooses by a substring test, so
    it would gzip the plain bytes for `gzip;q=0` (under the plain form's ETag), and it adds a
    second `Vary: Accept-Encoding` to a plain answer that has one. Here the request's
    `Accept-Encoding` is replaced by the decision (`gzip`, or none) before that middleware sees
    it, and the answer leaves with each `Vary` name once. Other paths pass untouched."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app, self.paths = app, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        gzipped = accepts_gzip(_joined(Headers(scope=scope), "accept-encoding"))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        if gzipped:
            headers.append((b"accept-encoding", b"gzip"))

        async def send_one_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer = MutableHeaders(raw=list(message.get("headers", [])))
                if "vary" in answer:
                    answer["vary"] = one_vary(answer.getlist("vary"))
                message = {**message, "headers": answer.raw}
            await send(message)

        await self.app({**scope, "headers": headers}, receive, send_one_vary)


def install_docs(app: FastAPI, token_url: str = "") -> None:
    """The two pages, their assets and the OpenAPI document; GET and HEAD only (FastAPI's own
    docs routes are off: KServe's app is made with `docs_url=None` unless `--enable_docs_url`).
    Call after adding the GZip middleware (`Negotiated` must be outside it)."""
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
    _install_openapi(app)
    app.add_middleware(Negotiated, paths=frozenset(PUBLIC_PATHS))


def _install_asset(app: FastAPI, path: Path, media_type: str) -> None:
    """One file, read and gzipped once at start-up (the Swagger bundle is 1.5 MB: ~40 ms of
    gzip per request otherwise)."""
    if not path.is_file():  # a package upgrade that moved its files: fail at start, by name
        raise FileNotFoundError(f"documentation asset {path} is missing (fastapi-offline)")
    encoded = Encoded.of(path.read_bytes(), media_type, ASSET_HEADERS)

    async def asset(request: Request) -> Response:
        return encoded.response(request)

    app.add_api_route(
        ASSET_PREFIX + path.name, asset, methods=["GET", "HEAD"], include_in_schema=False
    )


def _install_openapi(app: FastAPI) -> None:
    """The document, serialized and gzipped at its first request and then served from memory.
    FastAPI's own route (added when the app is made) serializes it on every request, and the
    GZip middleware then compresses it all on the event loop, for anyone. Not at start-up:
    KServe adds its routes after ours, and the document lists them. The bytes are those FastAPI
    sent (its JSONResponse rendering of `app.openapi()`, which rest/routes.py's hook describes); its
    per-request `servers` entry for a root path never applied, as this server has none."""
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) != OPENAPI_URL
    ]
    built: list[Encoded] = []

    def document() -> Encoded:
        if not built:  # no await in between: one build, even for concurrent first requests
            body = JSONResponse(app.openapi()).body
            built.append(Encoded.of(bytes(body), "application/json", OPENAPI_HEADERS))
        return built[0]

    async def openapi_json(request: Request) -> Response:
        return document().response(request)

    app.add_api_route(OPENAPI_URL, openapi_json, methods=["GET", "HEAD"], include_in_schema=False)
