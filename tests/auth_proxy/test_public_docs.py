"""The documentation pages through the proxy (PUBLIC_DOCS): a browser cannot attach a token to a
page load, so `/docs`, `/redoc`, `/openapi.json` and the files they load pass without one, by
their exact decoded paths and for GET / HEAD only; every operation the pages call, and every
path an attacker can write around them, still needs a token. Against the real proxy in front
of the real predictor; the tricks as raw bytes, since HTTP clients normalise them away."""

from __future__ import annotations

import httpx
import pytest

from auth_proxy.public_paths import DOCS_PATHS
from support.clients import raw_exchange, status_of
from support.issuer import issuer_env
from support.servers import start_proxy

DOCS = sorted(DOCS_PATHS)


def url(process, path: str) -> str:
    return f"http://127.0.0.1:{process.http_port}{path}"


def raw(process, method: str, target: str, extra: str = "") -> tuple[int, bytes]:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n"
    answer = raw_exchange(process.http_port, head.encode("latin-1"))
    return status_of(answer), answer


@pytest.fixture(scope="module")
def closed_docs_proxy(issuer, predictor, tmp_path_factory):
    """The proxy with PUBLIC_DOCS=false: the pages need a token like everything else."""
    process = start_proxy(
        tmp_path_factory.mktemp("closed-docs"),
        **issuer_env(issuer),
        upstream=predictor,
        PUBLIC_DOCS="false",
    )
    yield process
    process.stop()


@pytest.mark.parametrize("path", DOCS)
def test_the_pages_and_their_files_pass_without_a_token(proxy, path):
    response = httpx.get(url(proxy, path), headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200, response.text[:300]
    head = httpx.head(url(proxy, path), headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(response.content))


def test_the_pages_carry_their_content_security_policy_through_the_proxy(proxy):
    for page in ("/docs", "/redoc"):
        policy = httpx.get(url(proxy, page)).headers["content-security-policy"]
        assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy.split(";")[1]


@pytest.mark.parametrize("path", DOCS)
def test_public_docs_off_puts_the_pages_behind_the_token(closed_docs_proxy, issuer, path):
    assert httpx.get(url(closed_docs_proxy, path)).status_code == 401
    token = {"Authorization": f"Bearer {issuer.token()}"}
    assert httpx.get(url(closed_docs_proxy, path), headers=token).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/upload"),
        ("POST", "/v2/models/cats-dogs-other/infer"),
        ("GET", "/v2/models/cats-dogs-other"),
        ("GET", "/v2"),
        ("GET", "/v1/models"),
    ],
)
def test_every_operation_the_pages_call_still_needs_a_token(proxy, method, path):
    response = httpx.request(method, url(proxy, path))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


# What an attacker may write around the public paths. 400: dot segments are refused before
# anything else; 401: any other path than the exact ones is an ordinary protected path.
TRICKS = [
    ("GET", "/docs/../v2/models/cats-dogs-other", 400),
    ("GET", "/docs/%2e%2e/v2/models/cats-dogs-other", 400),
    ("GET", "/docs%2f..%2fv2%2fmodels%2fcats-dogs-other", 400),
    ("GET", "/docs/assets/..%2f..%2fv2%2fmodels%2fcats-dogs-other", 400),
    ("GET", "/openapi.json/../v2/models/cats-dogs-other", 400),
    ("POST", "/docs/assets/%2e%2e/%2e%2e/upload", 400),
    ("GET", "//docs", 401),
    ("GET", "/docs/", 401),
    ("GET", "/DOCS", 401),
    ("GET", "/docs;/v2/models/cats-dogs-other", 401),
    ("GET", "/docs%00", 401),
    ("GET", "/docs/assets/", 401),
    ("GET", "/docs/assets/x.js", 401),
    ("GET", "/docs/assets/swagger-ui.css/x", 401),
    ("GET", "/docs/v2/models/cats-dogs-other", 401),
    ("GET", "/redoc/x", 401),
    ("GET", "/openapi.json%2f", 401),
    ("GET", "/v2/models/cats-dogs-other?/docs", 401),
    ("GET", "http://127.0.0.1/v2/models/cats-dogs-other", 401),
    ("POST", "/docs", 401),
    ("PUT", "/openapi.json", 401),
    ("DELETE", "/redoc", 401),
    ("OPTIONS", "/docs", 401),
    ("PATCH", "/docs/assets/favicon.png", 401),
]


@pytest.mark.parametrize(("method", "target", "status"), TRICKS)
def test_no_path_trick_around_the_pages_bypasses_the_token(proxy, method, target, status):
    code, answer = raw(proxy, method, target)
    assert code == status, answer[:400]


def test_a_body_on_a_public_page_is_refused(proxy):
    code, answer = raw(proxy, "GET", "/docs", "Content-Length: 5\r\n\r\nhello")
    assert code == 400, answer[:400]


def test_a_query_reaches_only_the_page_and_a_huge_one_is_refused(proxy):
    code, answer = raw(proxy, "GET", "/docs?x=/v2/models/cats-dogs-other")
    assert code == 200 and b"swagger-ui" in answer
    code, _ = raw(proxy, "GET", "/docs?access_token=abc")
    assert code == 400  # tokens in the query are refused on every path
    code, _ = raw(proxy, "GET", "/docs?x=" + "a" * 20_000)
    assert 400 <= code < 500  # the request line is over aiohttp's limit


def test_assets_are_compressed_once_not_per_request_and_revalidated(proxy):
    """Anyone may fetch them: a stored gzip copy, an ETag and a 304, so an anonymous loop
    costs the predictor's event loop no compression."""
    import gzip

    from predictor.rest import docs

    path = "/docs/assets/swagger-ui-bundle.js"
    plain = (docs.asset_folder() / "swagger-ui-bundle.js").read_bytes()
    raw = httpx.get(url(proxy, path), headers={"Accept-Encoding": "identity"})
    assert raw.content == plain and "content-encoding" not in raw.headers
    with httpx.stream("GET", url(proxy, path), headers={"Accept-Encoding": "gzip"}) as packed:
        assert packed.headers["content-encoding"] == "gzip"
        body = b"".join(packed.iter_raw())
        assert gzip.decompress(body) == plain
        # the copy made at start-up (level 9, no timestamp), not a per-request compression
        assert body == gzip.compress(plain, compresslevel=9, mtime=0)
        packed_tag = packed.headers["etag"]
    # Each form has its own ETag; a 304 answers the tag of the form the client would get.
    assert packed_tag != raw.headers["etag"]
    for encoding, tag, status in [
        ("identity", raw.headers["etag"], 304),
        ("gzip", packed_tag, 304),
        ("gzip", raw.headers["etag"], 200),
    ]:
        again = httpx.get(
            url(proxy, path), headers={"If-None-Match": tag, "Accept-Encoding": encoding}
        )
        assert again.status_code == status and (status == 200 or again.content == b"")
        assert again.headers["etag"] == (packed_tag if encoding == "gzip" else raw.headers["etag"])
        assert again.headers["vary"] == "Accept-Encoding"
    assert raw.headers["vary"] == "Accept-Encoding"  # once: a cache keeps both versions apart


def test_a_page_fetched_compressed_stays_whole_for_the_next_client(proxy):
    for _ in range(3):
        for encoding in ("gzip", "identity"):
            page = httpx.get(url(proxy, "/docs"), headers={"Accept-Encoding": encoding})
            assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
            assert page.headers.get("vary", "").count("Accept-Encoding") <= 1
