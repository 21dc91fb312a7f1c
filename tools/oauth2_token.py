"""Get an access token for the API with the OAuth2 client-credentials grant, from any OIDC
provider that implements RFC 6749 and RFC 8707 or Auth0's `audience` (Auth0, Keycloak / Red Hat
build of Keycloak, Okta, panva's oidc-provider...; not Entra ID, whose v2 endpoint refuses
`resource` and wants `scope=<app>/.default`).

    OAUTH2_ISSUER=https://issuer/ OAUTH2_AUDIENCE=https://api OAUTH2_CLIENT_ID=... \\
    OAUTH2_CLIENT_SECRET=... python3 tools/oauth2_token.py   # prints the access token

The standard flow, which every provider accepts: the token endpoint from the issuer's discovery
document (`/.well-known/openid-configuration`), a form-encoded body (RFC 6749 4.4) with
`grant_type=client_credentials` and `scope` (default `get::prediction`, which the proxy
requires), the API as `resource` (RFC 8707; without it a standard provider issues an opaque
token, not a JWT for the API) and as `audience` (Auth0's name for it; others ignore it), the
client authenticated by HTTP Basic (`client_secret_basic`, the default) or in the body
(`--auth post` or OAUTH2_CLIENT_AUTH=post: Auth0's default method for its applications).

The client secret goes only to a token endpoint on the issuer's own origin (scheme, host and
port), or to the one named with `--token-url` / OAUTH2_TOKEN_URL (then no discovery: for a
provider whose token endpoint lives elsewhere, as Google's does): a discovery document that
anyone between could edit must not send the secret to another server. The access token is
printed only if it is one header-safe line (RFC 6750 `b64token`, which a JWT is): it goes
into an `Authorization` header (tools/smoke_test.sh), where a line break would add headers.
Standard library only: it runs in a workflow or a pod as it is.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class TokenError(Exception):
    """The provider could not be asked, or refused; the message says which and why."""


AUTH_METHODS = {"basic": "basic", "client_secret_basic": "basic", "post": "post"}
AUTH_METHODS["client_secret_post"] = "post"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the client's credentials to wherever it points: refused."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise TokenError(f"{req.full_url} redirects (HTTP {code}) to {newurl[:200]}: refused")


_OPENER = urllib.request.build_opener(_NoRedirects)
DEFAULT_PORTS = {"http": 80, "https": 443}
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 2.1: what a Bearer header carries


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) as origins compare them: case-insensitive, the default port
    written or not."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise TokenError(f"{_printable(url)} has a port that is not a number") from None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme)


def header_safe(token: str) -> bool:
    """One RFC 6750 `b64token`: nothing a header line could be split or ended with."""
    return B64TOKEN.fullmatch(token) is not None


def _check_secure(url: str) -> None:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "https" and parsed.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise TokenError(f"{url[:200]} is not https: credentials go over https only")


def _printable(text: object, limit: int = 200) -> str:
    """Provider-written text, safe for a log or a workflow's output: printable ASCII, cut."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))[:limit]


def _get_json(request: urllib.request.Request | str, timeout: float) -> dict:
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    _check_secure(url)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            document = json.load(response)
    except urllib.error.HTTPError as exc:
        # Only the RFC 6749 5.2 fields: an echo of the request (a secret in a POST body) must
        # not be printed back.
        try:
            answer = json.loads(exc.read(4000))
            said = f"{answer.get('error')}: {answer.get('error_description', '')}"
        except (ValueError, AttributeError):
            said = "(no OAuth2 error object)"
        raise TokenError(f"{url} answered HTTP {exc.code}: {_printable(said)}") from None
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        raise TokenError(f"cannot reach {url}: {_printable(exc)}") from None
    except ValueError:
        raise TokenError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise TokenError(f"{url} did not answer a JSON object")
    return document


def token_endpoint(issuer: str, timeout: float = 10) -> str:
    """The issuer's token endpoint, from its OIDC discovery document."""
    discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = _get_json(discovery, timeout)
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise TokenError(f"{discovery} names no token_endpoint")
    if origin(endpoint) != origin(issuer):
        raise TokenError(
            f"{discovery} names a token endpoint on another origin than the issuer's "
            f"({_printable(endpoint)}): the client secret is not sent there; if it is right, "
            "name it with --token-url or OAUTH2_TOKEN_URL"
        )
    return endpoint


def get_token(
    issuer: str,
    audience: str,
    client_id: str,
    client_secret: str,
    *,
    scope: str = "get::prediction",
    auth: str = "basic",
    timeout: float = 10,
    token_url: str = "",
) -> str:
    """An access token for `audience` by the client-credentials grant, from `token_url` if
    given, else from the token endpoint the issuer's discovery document names on its origin."""
    if auth not in AUTH_METHODS:
        raise TokenError(
            f"unknown client authentication {auth!r}: one of {', '.join(AUTH_METHODS)}"
        )
    auth = AUTH_METHODS[auth]
    form = {"grant_type": "client_credentials", "resource": audience, "audience": audience}
    if scope:
        form["scope"] = scope
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if auth == "basic":  # RFC 6749 2.3.1: each part form-encoded, then Base64
        quoted = (
            f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(client_secret, safe='')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(quoted.encode()).decode()
    else:
        form.update(client_id=client_id, client_secret=client_secret)
    request = urllib.request.Request(
        token_url or token_endpoint(issuer, timeout),
        data=urllib.parse.urlencode(form).encode(),
        headers=headers,
        method="POST",
    )
    answer = _get_json(request, timeout)
    token = answer.get("access_token")
    if not isinstance(token, str):
        raise TokenError(f"{request.full_url} answered no access_token")
    if not header_safe(token):
        raise TokenError(
            f"{request.full_url} answered an access_token that is not one header-safe line "
            "(RFC 6750 b64token: A-Z a-z 0-9 - . _ ~ + / then = only): refused"
        )
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Get an OAuth2 access token (client credentials).")
    env = os.environ.get
    parser.add_argument("--issuer", default=env("OAUTH2_ISSUER"))
    parser.add_argument(
        "--token-url",
        default=env("OAUTH2_TOKEN_URL") or "",
        help="the token endpoint, if not the one on the issuer's origin its discovery names",
    )
    parser.add_argument("--audience", default=(env("OAUTH2_AUDIENCE") or "").split(",")[0])
    parser.add_argument("--client-id", default=env("OAUTH2_CLIENT_ID"))
    parser.add_argument("--client-secret", default=env("OAUTH2_CLIENT_SECRET"))
    parser.add_argument("--scope", default=env("OAUTH2_SCOPE") or "get::prediction")
    parser.add_argument(
        "--auth",
        default=env("OAUTH2_CLIENT_AUTH") or "basic",
        help="basic (client_secret_basic) or post (client_secret_post)",
    )
    args = parser.parse_args(argv)
    missing = [
        name
        for name, value in (
            ("OAUTH2_ISSUER", args.issuer or args.token_url),
            ("OAUTH2_AUDIENCE", args.audience),
            ("OAUTH2_CLIENT_ID", args.client_id),
            ("OAUTH2_CLIENT_SECRET", args.client_secret),
        )
        if not value
    ]
    if missing:
        print(f"oauth2_token: set {', '.join(missing)} (or the matching options)", file=sys.stderr)
        return 2
    try:
        print(
            get_token(
                args.issuer or "",
                args.audience,
                args.client_id,
                args.client_secret,
                scope=args.scope,
                auth=args.auth,
                token_url=args.token_url,
            )
        )
    except TokenError as exc:
        print(f"oauth2_token: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
