"""Get an access token for the API with the OAuth2 client-credentials grant, from any OIDC
provider (Auth0, Keycloak / Red Hat build of Keycloak, Okta, Entra ID, panva's oidc-provider...).

    OAUTH2_ISSUER=https://issuer/ OAUTH2_AUDIENCE=https://api OAUTH2_CLIENT_ID=... \\
    OAUTH2_CLIENT_SECRET=... python3 tools/oauth2_token.py   # prints the access token

The standard flow, which every provider accepts: the token endpoint from the issuer's discovery
document (`/.well-known/openid-configuration`), a form-encoded body (RFC 6749 4.4) with
`grant_type=client_credentials` and `scope` (default `get::prediction`, which the proxy
requires), the API as `resource` (RFC 8707; without it a standard provider issues an opaque
token, not a JWT for the API) and as `audience` (Auth0's name for it; others ignore it), the
client authenticated by HTTP Basic (`client_secret_basic`, the default) or in the body
(`--auth post` or OAUTH2_CLIENT_AUTH=post: Auth0's default method for its applications).
Standard library only: it runs in a workflow or a pod as it is.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request


class TokenError(Exception):
    """The provider could not be asked, or refused; the message says which and why."""


def _get_json(request: urllib.request.Request | str, timeout: float) -> dict:
    url = request.full_url if isinstance(request, urllib.request.Request) else request
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        raise TokenError(f"{url} answered HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TokenError(f"cannot reach {url}: {exc}") from None
    except ValueError:
        raise TokenError(f"{url} did not answer JSON") from None


def token_endpoint(issuer: str, timeout: float = 10) -> str:
    """The issuer's token endpoint, from its OIDC discovery document."""
    discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
    document = _get_json(discovery, timeout)
    endpoint = document.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise TokenError(f"{discovery} names no token_endpoint")
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
) -> str:
    """An access token for `audience` by the client-credentials grant."""
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
        token_endpoint(issuer, timeout),
        data=urllib.parse.urlencode(form).encode(),
        headers=headers,
        method="POST",
    )
    answer = _get_json(request, timeout)
    token = answer.get("access_token")
    if not isinstance(token, str):
        raise TokenError(f"{request.full_url} answered no access_token")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    env = os.environ.get
    parser.add_argument("--issuer", default=env("OAUTH2_ISSUER"))
    parser.add_argument("--audience", default=(env("OAUTH2_AUDIENCE") or "").split(",")[0])
    parser.add_argument("--client-id", default=env("OAUTH2_CLIENT_ID"))
    parser.add_argument("--client-secret", default=env("OAUTH2_CLIENT_SECRET"))
    parser.add_argument("--scope", default=env("OAUTH2_SCOPE") or "get::prediction")
    parser.add_argument(
        "--auth", choices=["basic", "post"], default=env("OAUTH2_CLIENT_AUTH") or "basic"
    )
    args = parser.parse_args(argv)
    missing = [
        name
        for name, value in (
            ("OAUTH2_ISSUER", args.issuer),
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
                args.issuer,
                args.audience,
                args.client_id,
                args.client_secret,
                scope=args.scope,
                auth=args.auth,
            )
        )
    except TokenError as exc:
        print(f"oauth2_token: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
