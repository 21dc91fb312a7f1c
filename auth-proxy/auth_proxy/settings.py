"""The proxy's settings, read once from environment variables (names the course already used
where it had them). Every variable is documented in the README."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urljoin

from .passing import Network, parse_networks

DEFAULT_PUBLIC_PATHS = (
    "/health",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/cats-dogs-other/ready",
)
DEFAULT_PUBLIC_GRPC_METHODS = (
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ModelReady",
)
# Never accepted, whatever OAUTH2_ALGORITHMS says: no signature, or a shared secret that a
# public JWKS key could be abused as (the RS256 -> HS256 key-confusion attack).
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})


class SettingsError(ValueError):
    """A variable is missing or wrong; the message names it."""


@dataclass(frozen=True)
class TokenRules:
    """What a token must satisfy. Pure data: `tokens.validate` needs nothing else."""

    issuer: str
    audiences: tuple[str, ...]
    scope: str = "get::prediction"
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_seconds: float = 60.0


@dataclass(frozen=True)
class Settings:
    rules: TokenRules
    jwks_uri: str | None  # None: discover it from the issuer's openid-configuration
    jwks_ttl_seconds: float
    jwks_min_refresh_seconds: float
    realm: str
    listen_host: str
    http_port: int
    grpc_port: int
    admin_port: int
    upstream_http: str
    upstream_grpc: str
    upstream_timeout_seconds: float
    max_body_bytes: int
    public_paths: frozenset[str]
    public_grpc_methods: frozenset[str]
    client_idle_timeout_seconds: float = 30.0
    client_body_timeout_seconds: float = 30.0
    jwks_max_bytes: int = 1024 * 1024
    trusted_proxies: tuple[Network, ...] = ()
    refusal_log_lines: int = 20


def _list(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if value is None or not value.strip():
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _number(env, name: str, default: float, kind=float):
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None


def _positive(env, name: str, default: float, kind=float):
    value = _number(env, name, default, kind)
    if not value > 0:
        raise SettingsError(f"{name} must be greater than 0, got {value!r}")
    return value


def _networks(env, name: str) -> tuple[Network, ...]:
    try:
        return parse_networks(env.get(name, ""))
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def jwks_uri_for(issuer: str, configured: str | None) -> str | None:
    """An absolute URI as is; a relative one joined to the issuer, as the course did
    (`https://tenant/` + `.well-known/jwks.json`); None means discovery."""
    if not configured:
        return None
    if "://" in configured:
        return configured
    return urljoin(issuer if issuer.endswith("/") else issuer + "/", configured)


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    issuer = env.get("OAUTH2_ISSUER", "").strip()
    if not issuer:
        raise SettingsError("OAUTH2_ISSUER is required, e.g. https://tenant.eu.auth0.com/")
    audiences = _list(env.get("OAUTH2_AUDIENCE"), ())
    if not audiences:
        raise SettingsError(
            "OAUTH2_AUDIENCE is required (one audience, or several comma-separated)"
        )
    algorithms = _list(env.get("OAUTH2_ALGORITHMS"), ("RS256",))
    forbidden = [alg for alg in algorithms if alg in FORBIDDEN_ALGORITHMS or alg.lower() == "none"]
    if forbidden:
        raise SettingsError(f"OAUTH2_ALGORITHMS may not include {', '.join(forbidden)}")
    rules = TokenRules(
        issuer=issuer,
        audiences=audiences,
        scope=env.get("OAUTH2_SCOPE", "get::prediction").strip() or "get::prediction",
        algorithms=algorithms,
        leeway_seconds=_number(env, "OAUTH2_LEEWAY_SECONDS", 60.0),
    )
    return Settings(
        rules=rules,
        jwks_uri=jwks_uri_for(issuer, env.get("OAUTH2_JWKS_URI", "").strip()),
        jwks_ttl_seconds=_number(env, "JWKS_CACHE_TTL_SECONDS", 600.0),
        jwks_min_refresh_seconds=_number(env, "JWKS_MIN_REFRESH_SECONDS", 10.0),
        realm=env.get("AUTH_REALM", "cats-dogs-other"),
        listen_host=env.get("PROXY_LISTEN_HOST", "0.0.0.0"),
        http_port=_number(env, "PROXY_HTTP_PORT", 9080, int),
        grpc_port=_number(env, "PROXY_GRPC_PORT", 9081, int),
        admin_port=_number(env, "PROXY_ADMIN_PORT", 9082, int),
        upstream_http=env.get("UPSTREAM_HTTP", "http://127.0.0.1:8080").rstrip("/"),
        upstream_grpc=env.get("UPSTREAM_GRPC", "127.0.0.1:8081"),
        upstream_timeout_seconds=_number(env, "UPSTREAM_TIMEOUT_SECONDS", 120.0),
        max_body_bytes=_number(env, "MAX_BODY_BYTES", 64 * 1024 * 1024, int),
        public_paths=frozenset(_list(env.get("PUBLIC_PATHS"), DEFAULT_PUBLIC_PATHS)),
        public_grpc_methods=frozenset(
            _list(env.get("PUBLIC_GRPC_METHODS"), DEFAULT_PUBLIC_GRPC_METHODS)
        ),
        client_idle_timeout_seconds=_positive(env, "CLIENT_IDLE_TIMEOUT_SECONDS", 30.0),
        client_body_timeout_seconds=_positive(env, "CLIENT_BODY_TIMEOUT_SECONDS", 30.0),
        jwks_max_bytes=_positive(env, "JWKS_MAX_BYTES", 1024 * 1024, int),
        trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
        refusal_log_lines=_number(env, "REFUSAL_LOG_LINES", 20, int),
    )
