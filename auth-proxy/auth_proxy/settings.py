"""The proxy's settings: one declared table of environment variables (names the course already
used where it had them), read once into a frozen `Settings`. A bad value is refused by name
(`PROXY_HTTP_PORT must be a number, got 'eighty'`; the process exits 2). Every variable is
documented by its help below: docs/configuration.md is written from this table
(`python -m tools.config_docs`), and `python -m auth_proxy --help` prints it."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

# What passes without a token (and what is closed) are path lists, in public_paths.py.
from .public_paths import DEFAULT_PUBLIC_GRPC_METHODS, DEFAULT_PUBLIC_PATHS, PUBLIC_GRPC_ALLOWED

# Never accepted, whatever OAUTH2_ALGORITHMS says: no signature, or a shared secret that a
# public JWKS key could be abused as (the RS256 -> HS256 key-confusion attack).
FORBIDDEN_ALGORITHMS = frozenset({"none", "HS256", "HS384", "HS512"})
# The public-key signature algorithms a token may use (tokens.KEY_NEEDED says with which key).
SIGNATURE_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES256K", "ES384", "ES512", "EdDSA"}
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network  # one entry of TRUSTED_PROXIES


class SettingsError(ValueError):
    """A variable is missing or wrong; the message names it."""


class Unechoed(ValueError):
    """A refusal whose message must not repeat the value (it may hold a password)."""


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
    public_docs: bool
    public_grpc_methods: frozenset[str]
    client_idle_timeout_seconds: float
    client_body_timeout_seconds: float
    jwks_max_bytes: int
    trusted_proxies: tuple[Network, ...]
    refusal_log_lines: int
    memory_budget_bytes: int  # 0: sized from the container's memory limit (budget.py)
    payload_log: PayloadLog | None = None  # None: PAYLOAD_LOG_URL unset, nothing logged


PAYLOAD_LOG_MODES = ("all", "request", "response")  # KServe's logger modes


@dataclass(frozen=True)
class PayloadLog:
    """Where and what the payload log sends (payload_log.py), as KServe's logger does."""

    url: str
    mode: str  # one of PAYLOAD_LOG_MODES
    queue_bytes: int  # 0: a share of the memory budget (budget.plan_memory)
    queue_events: int
    timeout_seconds: float
    namespace: str  # the pod's namespace (POD_NAMESPACE, from the downward API)


def _text(value: str) -> str:
    return value.strip()


def _names(value: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _number(kind: type, positive: bool = False, at_least: float | None = None):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise ValueError("must be a number") from None
        if not number == number or number in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        if positive and not number > 0:
            raise ValueError("must be greater than 0")
        if at_least is not None and number < at_least:
            raise ValueError(f"must be at least {at_least:g}")
        return number

    return parse


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise ValueError("must be true or false")
    return lowered in ("true", "yes", "on", "1")


def _choice(*allowed: str):
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return lowered

    return parse


def parse_log_url(value: str) -> str:
    """`PAYLOAD_LOG_URL`: an http(s) URL with a host and no user or password. The refusal
    never repeats the value, so a password written into it stays out of the log."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise Unechoed("is not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise Unechoed("must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise Unechoed("may not hold a user or password (they would reach the logs)")
    if not parts.hostname:
        raise Unechoed("must name a host")
    return text


def parse_networks(value: str) -> tuple[Network, ...]:
    """`TRUSTED_PROXIES`: comma-separated addresses or CIDRs; ValueError names a bad one."""
    networks = []
    for item in (part.strip() for part in value.split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network: {item!r}") from None
    return tuple(networks)


@dataclass(frozen=True)
class Variable:
    name: str
    parse: Callable[[str], Any]
    default: Any  # REQUIRED: no default
    help: str


REQUIRED = object()
# The proxy's whole configuration: one variable each; its help is docs/configuration.md's.
VARIABLES: tuple[Variable, ...] = (
    Variable(
        "OAUTH2_ISSUER",
        _text,
        REQUIRED,
        "the issuer, exactly as the tokens' iss and its discovery document write it (trailing "
        "slash included), e.g. https://tenant.eu.auth0.com/",
    ),
    Variable(
        "OAUTH2_AUDIENCE",
        _names,
        REQUIRED,
        "the API identifier(s), comma-separated: a token's aud (string or list) must hold one",
    ),
    Variable(
        "OAUTH2_JWKS_URI",
        _text,
        "",
        "the key set's URI: absolute (https://..., file://...), or relative to the issuer as "
        "the course gave it (.well-known/jwks.json); empty: OIDC discovery, read from "
        "<issuer>/.well-known/openid-configuration",
    ),
    Variable(
        "OAUTH2_SCOPE",
        _text,
        "get::prediction",
        "the scope required, found in the token's scope (space-separated), scp (string or "
        "list) or permissions (list)",
    ),
    Variable(
        "OAUTH2_ALGORITHMS",
        _names,
        ("RS256",),
        "allowed signature algorithms, comma-separated, of RS256/384/512, PS256/384/512, "
        "ES256, ES256K, ES384, ES512, EdDSA; none, HS256/384/512 and unknown names are refused "
        "at start",
    ),
    Variable(
        "OAUTH2_LEEWAY_SECONDS",
        _number(float, at_least=0),
        60.0,
        "clock skew allowed on exp, nbf and iat, in seconds",
    ),
    Variable(
        "JWKS_CACHE_TTL_SECONDS",
        _number(float, True),
        300.0,
        "how often the key set is refetched, in seconds: a key the issuer removed stays "
        "accepted at most this long (Envoy's remote_jwks default is 600 s)",
    ),
    Variable(
        "JWKS_MIN_REFRESH_SECONDS",
        _number(float, at_least=0),
        1.0,
        "at most one extra key-set fetch per this many seconds when tokens name unknown kids: "
        "an issuer that signs with a new key at once is followed within a second, and a flood "
        "of made-up kids costs the issuer one fetch a second per pod",
    ),
    Variable(
        "JWKS_MAX_BYTES",
        _number(int, True),
        1024 * 1024,
        "largest discovery document or key set read from the issuer; larger: not ready, with "
        "the reason",
    ),
    Variable("AUTH_REALM", _text, "cats-dogs-other", "the realm in WWW-Authenticate"),
    Variable("PROXY_LISTEN_HOST", _text, "0.0.0.0", "where the proxy's three ports listen"),
    Variable("PROXY_HTTP_PORT", _number(int, True), 9080, "the REST port"),
    Variable(
        "PROXY_GRPC_PORT",
        _number(int, True),
        9081,
        "the gRPC port (HTTP/2, plaintext: TLS ends at the route)",
    ),
    Variable(
        "PROXY_ADMIN_PORT",
        _number(int, True),
        9082,
        "the proxy's own /livez, /readyz (are there signing keys? if not, why) and /metrics, "
        "and the predictor's metrics at /metrics/predictor (read from UPSTREAM_HTTP at each "
        "scrape); no token: open it to monitoring only",
    ),
    Variable("UPSTREAM_HTTP", _text, "http://127.0.0.1:8080", "the predictor's REST address"),
    Variable("UPSTREAM_GRPC", _text, "127.0.0.1:8081", "the predictor's gRPC address"),
    Variable(
        "UPSTREAM_TIMEOUT_SECONDS",
        _number(float, True),
        120.0,
        "longest wait for the predictor's answer before 504, in seconds; a gRPC call's "
        "deadline is the caller's, capped at this",
    ),
    Variable(
        "MAX_BODY_BYTES",
        _number(int, True),
        64 * 1024 * 1024,
        "largest request body / gRPC message; larger get 413 / RESOURCE_EXHAUSTED",
    ),
    Variable(
        "PUBLIC_PATHS",
        _names,
        DEFAULT_PUBLIC_PATHS,
        "exact paths, comma-separated, a bodiless GET may reach without a token: the probes",
    ),
    Variable(
        "PUBLIC_DOCS",
        _flag,
        True,
        "/docs, /redoc, /openapi.json and the files they load (/docs/assets/...) pass without "
        "a token, GET/HEAD, exact paths only: a browser cannot attach a token to a page load, "
        "and the operations they call still need one; false: behind the token like the rest",
    ),
    Variable(
        "PUBLIC_GRPC_METHODS",
        _names,
        DEFAULT_PUBLIC_GRPC_METHODS,
        "gRPC methods without a token: only ServerLive and ServerReady may be listed (their "
        "requests carry nothing, so the proxy answers an anonymous call without reading its "
        "message); ModelReady names a model and needs a token",
    ),
    Variable(
        "CLIENT_IDLE_TIMEOUT_SECONDS",
        _number(float, True),
        30.0,
        "seconds a connection may wait for its next request head to arrive in full, after it "
        "opened or after its last answer; then it is closed (silent, slow and idle clients)",
    ),
    Variable(
        "CLIENT_BODY_TIMEOUT_SECONDS",
        _number(float, True),
        30.0,
        "longest wait in seconds for the next piece of a request body (a body of up to 1 MiB: "
        "for all of it); then 408",
    ),
    Variable(
        "TRUSTED_PROXIES",
        parse_networks,
        (),
        "addresses or CIDRs (comma-separated) of proxies in front of this one whose "
        "X-Forwarded-For / -Proto / -Host / -Port are kept, e.g. the OpenShift router's network",
    ),
    Variable(
        "REFUSAL_LOG_LINES",
        _number(int, True),
        20,
        "refusal log lines per 10 s at most; the rest are counted in /metrics, and the next "
        "line says how many were left out",
    ),
    Variable(
        "MEMORY_BUDGET_BYTES",
        _number(int, at_least=0),
        0,
        "bytes of admitted bodies and gRPC messages in flight at once; over it: 429 with "
        "Retry-After: 1 / RESOURCE_EXHAUSTED. 0: three quarters of what the container's memory "
        "limit leaves above 64 MiB (144 MiB for the Deployment's 256 MiB), 512 MiB without a "
        "limit. With PAYLOAD_LOG_URL set, the payload log's queue is taken out of it. The "
        "largest gRPC message read is a sixth of what requests keep",
    ),
    Variable(
        "PAYLOAD_LOG_URL",
        parse_log_url,
        "",
        "where inference requests and answers are sent as CloudEvents, as KServe's logger "
        "sends them (docs/payload-logging.md): an http:// or https:// URL without user or "
        "password; empty: nothing is logged",
    ),
    Variable(
        "PAYLOAD_LOG_MODE",
        _choice(*PAYLOAD_LOG_MODES),
        "all",
        "what is logged, as KServe's logger mode: all (requests and answers), request, or response",
    ),
    Variable(
        "PAYLOAD_LOG_QUEUE_BYTES",
        _number(int, at_least=0),
        0,
        "bytes the payload log may hold: bodies queued, being copied or being sent, 1 KiB "
        "counted per event besides its body; taken out of the memory budget. A body larger is "
        "not logged, and an event that does not fit is dropped, never waited for (both counted "
        "in /metrics). 0: an eighth of the memory budget (18 MiB for the Deployment)",
    ),
    Variable(
        "PAYLOAD_LOG_QUEUE_EVENTS",
        _number(int, True),
        1000,
        "events the payload log may hold at once; more are dropped and counted",
    ),
    Variable(
        "PAYLOAD_LOG_TIMEOUT_SECONDS",
        _number(float, True),
        5.0,
        "longest the payload log waits for the receiver to take one event, in seconds; then "
        "the event is dropped and counted",
    ),
    Variable(
        "POD_NAMESPACE",
        _text,
        "",
        "the pod's namespace: the payload log's namespace attribute (the Deployment sets it "
        "from the downward API)",
    ),
)


def read(env: Mapping[str, str]) -> dict[str, Any]:
    """Each variable's value by name: parsed, or its default when unset or blank."""
    values: dict[str, Any] = {}
    for variable in VARIABLES:
        text = env.get(variable.name, "")
        if not text.strip():
            if variable.default is REQUIRED:
                raise SettingsError(f"{variable.name} is required: {variable.help}")
            values[variable.name] = variable.default
            continue
        try:
            values[variable.name] = variable.parse(text)
        except Unechoed as exc:
            raise SettingsError(f"{variable.name} {exc}") from None
        except ValueError as exc:
            raise SettingsError(f"{variable.name} {exc}, got {text[:60]!r}") from None
    return values


def jwks_uri_for(issuer: str, configured: str | None) -> str | None:
    """An absolute URI as is; a relative one joined to the issuer, as the course did
    (`https://tenant/` + `.well-known/jwks.json`); None means discovery."""
    if not configured:
        return None
    if "://" in configured:
        return configured
    return urljoin(issuer if issuer.endswith("/") else issuer + "/", configured)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    v = read(os.environ if env is None else env)
    issuer = v["OAUTH2_ISSUER"]
    unreadable = sorted(set(v["PUBLIC_GRPC_METHODS"]) - set(PUBLIC_GRPC_ALLOWED))
    if unreadable:
        raise SettingsError(
            f"PUBLIC_GRPC_METHODS may hold only {', '.join(PUBLIC_GRPC_ALLOWED)}: "
            f"not {', '.join(unreadable)}"
        )
    if not v["OAUTH2_AUDIENCE"]:
        raise SettingsError("OAUTH2_AUDIENCE is required: the API identifier(s), comma-separated")
    algorithms = v["OAUTH2_ALGORITHMS"]
    forbidden = [a for a in algorithms if a in FORBIDDEN_ALGORITHMS or a.lower() == "none"]
    if forbidden:
        raise SettingsError(f"OAUTH2_ALGORITHMS may not include {', '.join(forbidden)}")
    unknown = [a for a in algorithms if a not in SIGNATURE_ALGORITHMS]
    if unknown:
        raise SettingsError(
            f"OAUTH2_ALGORITHMS: unknown {', '.join(unknown)[:100]}; "
            f"one or more of {', '.join(sorted(SIGNATURE_ALGORITHMS))}"
        )
    rules = TokenRules(
        issuer=issuer,
        audiences=v["OAUTH2_AUDIENCE"],
        scope=v["OAUTH2_SCOPE"],
        algorithms=v["OAUTH2_ALGORITHMS"],
        leeway_seconds=v["OAUTH2_LEEWAY_SECONDS"],
    )
    return Settings(
        rules=rules,
        jwks_uri=jwks_uri_for(issuer, v["OAUTH2_JWKS_URI"]),
        jwks_ttl_seconds=v["JWKS_CACHE_TTL_SECONDS"],
        jwks_min_refresh_seconds=v["JWKS_MIN_REFRESH_SECONDS"],
        jwks_max_bytes=v["JWKS_MAX_BYTES"],
        realm=v["AUTH_REALM"],
        listen_host=v["PROXY_LISTEN_HOST"],
        http_port=v["PROXY_HTTP_PORT"],
        grpc_port=v["PROXY_GRPC_PORT"],
        admin_port=v["PROXY_ADMIN_PORT"],
        upstream_http=v["UPSTREAM_HTTP"].rstrip("/"),
        upstream_grpc=v["UPSTREAM_GRPC"],
        upstream_timeout_seconds=v["UPSTREAM_TIMEOUT_SECONDS"],
        max_body_bytes=v["MAX_BODY_BYTES"],
        public_paths=frozenset(v["PUBLIC_PATHS"]),
        public_docs=v["PUBLIC_DOCS"],
        public_grpc_methods=frozenset(v["PUBLIC_GRPC_METHODS"]),
        client_idle_timeout_seconds=v["CLIENT_IDLE_TIMEOUT_SECONDS"],
        client_body_timeout_seconds=v["CLIENT_BODY_TIMEOUT_SECONDS"],
        trusted_proxies=v["TRUSTED_PROXIES"],
        refusal_log_lines=v["REFUSAL_LOG_LINES"],
        memory_budget_bytes=v["MEMORY_BUDGET_BYTES"],
        payload_log=payload_log(v),
    )


def payload_log(v: Mapping[str, Any]) -> PayloadLog | None:
    """The payload log's settings, or None (off) while PAYLOAD_LOG_URL is unset."""
    if not v["PAYLOAD_LOG_URL"]:
        return None
    return PayloadLog(
        url=v["PAYLOAD_LOG_URL"],
        mode=v["PAYLOAD_LOG_MODE"],
        queue_bytes=v["PAYLOAD_LOG_QUEUE_BYTES"],
        queue_events=v["PAYLOAD_LOG_QUEUE_EVENTS"],
        timeout_seconds=v["PAYLOAD_LOG_TIMEOUT_SECONDS"],
        namespace=v["POD_NAMESPACE"],
    )
