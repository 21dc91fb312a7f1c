"""The issuer's signing keys: fetched, cached, refreshed, and refetched on rotation.

- Fetched at start-up, then again every TTL; a failed fetch keeps the last good keys.
- A token naming an unknown `kid` triggers an immediate refetch (the issuer rotated its keys),
  at most once per `min_refresh_seconds`, so a flood of made-up `kid`s cannot hammer the issuer.
- Ready means holding a key that can verify one of the allowed algorithms; until then `ready`
  is false and `problem` says why (nothing fetched yet, the fetch failed, an EC-only key set
  when only RS256 is allowed...).
- With OIDC discovery, the document's `issuer` must be OAUTH2_ISSUER exactly (OIDC Discovery
  4.3): a mismatch (one trailing slash) would otherwise make every token "wrong issuer".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import aiohttp
import jwt

from .metrics import KEY_FETCHES, KEYS_FETCHED_AT, KEYS_HELD
from .tokens import SigningKey, can_verify

logger = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[dict]]


class KeySetError(Exception):
    """The key set could not be fetched or read; the message says where and why."""


def parse_key_set(document: dict) -> dict[str, SigningKey]:
    """Public signing keys by `kid`. Symmetric (`oct`) keys and keys for encryption are skipped:
    a JWKS is public, so a shared secret in it would let anyone mint tokens."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetError("not a JWKS document: no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for index, entry in enumerate(document["keys"]):
        if not isinstance(entry, dict) or entry.get("kty") == "oct" or entry.get("use") == "enc":
            continue
        try:
            jwk = jwt.PyJWK.from_dict(entry)
        except jwt.PyJWTError as exc:
            logger.warning("skipping key %s of the key set: %s", entry.get("kid", index), exc)
            continue
        keys[str(entry.get("kid", f"#{index}"))] = SigningKey(jwk.key, entry.get("alg"))
    if not keys:
        raise KeySetError("the key set holds no usable public signing key")
    return keys


class KeyCache:
    def __init__(
        self,
        fetch: Fetch,
        *,
        source: str,
        ttl_seconds: float,
        min_refresh_seconds: float,
        algorithms: tuple[str, ...] = ("RS256",),
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self.algorithms = tuple(algorithms)
        self.source = source
        self.ttl_seconds = ttl_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._clock = clock
        self.keys: dict[str, SigningKey] = {}
        self._ready = False
        self._problem: str | None = "the signing keys have not been fetched yet"
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()

    @property
    def ready(self) -> bool:
        """A key that can verify an allowed algorithm is held (decided at each fetch)."""
        return self._ready

    @property
    def problem(self) -> str | None:
        """Why not ready (or why the last fetch failed while older keys still serve)."""
        if self._problem or self.ready:
            return self._problem
        held = ", ".join(sorted(self.keys)) or "none"
        return (
            f"no signing key from {self.source} can verify the allowed algorithms "
            f"({', '.join(self.algorithms)}, OAUTH2_ALGORITHMS); the keys held: {held}"
        )

    async def refresh(self) -> bool:
        """Fetch the key set now; on failure keep the keys we had. True if it succeeded."""
        async with self._lock:
            return await self._refresh_locked()

    async def refresh_for_unknown_kid(self) -> bool:
        """Refetch because a token named a key we lack, unless we fetched very recently. Checked
        again under the lock: requests that queued behind a slow fetch do not each fetch again."""
        if self._clock() - self._last_attempt < self.min_refresh_seconds:
            return False
        async with self._lock:
            if self._clock() - self._last_attempt < self.min_refresh_seconds:
                return False
            return await self._refresh_locked()

    async def _refresh_locked(self) -> bool:
        self._last_attempt = self._clock()
        try:
            keys = parse_key_set(await self._fetch())
            usable = any(can_verify(k, a) for k in keys.values() for a in self.algorithms)
            if not usable and self.ready:
                raise KeySetError(
                    "the new key set holds no key for the allowed algorithms "
                    f"({', '.join(self.algorithms)}): {', '.join(sorted(keys))}"
                )
        except Exception as exc:
            KEY_FETCHES.labels("failed").inc()
            detail = str(exc) if isinstance(exc, KeySetError | OSError) else repr(exc)[:300]
            self._problem = f"cannot fetch the signing keys from {self.source}: {detail}"
            kept = "; keeping the last good keys" if self.keys else ""
            logger.warning("%s%s", self._problem, kept)
            return False
        KEY_FETCHES.labels("ok").inc()
        KEYS_FETCHED_AT.set(time.time())
        KEYS_HELD.set(sum(any(can_verify(k, a) for a in self.algorithms) for k in keys.values()))
        if set(keys) != set(self.keys):
            logger.info("signing keys from %s: %s", self.source, ", ".join(sorted(keys)))
        self.keys, self._problem = keys, None
        self._ready = usable
        if not usable:
            logger.warning("%s", self.problem)
        return True

    async def keep_fresh(self) -> None:
        """Fetch now, then every TTL; while not ready, retry every few seconds."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.ttl_seconds if self.ready else min(5.0, self.ttl_seconds))


FETCH_TIMEOUT_SECONDS = 10.0


def fetcher(
    jwks_uri: str | None, issuer: str, session: aiohttp.ClientSession, max_bytes: int = 1 << 20
) -> Fetch:
    """How to get the key set: a `file://` JWKS, an HTTP(S) JWKS, or OIDC discovery. A
    document over `max_bytes` is refused unread (a key set is a few KB; an issuer that sends
    100 MB would otherwise hold the proxy's memory and event loop)."""

    async def get_json(url: str) -> dict:
        if url.startswith("file://"):
            path = Path(url2pathname(urlparse(url).path))
            return json.loads(await asyncio.to_thread(path.read_text))
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
        too_big = f"{url} sends more than {max_bytes} bytes (JWKS_MAX_BYTES)"
        try:
            # The session does not decompress (the REST port passes bodies as they are): ask
            # for the document as is, which also keeps JWKS_MAX_BYTES about what is parsed.
            identity = {"Accept-Encoding": "identity"}
            async with session.get(url, timeout=timeout, headers=identity) as response:
                if response.status != 200:
                    raise KeySetError(f"{url} answered HTTP {response.status}")
                if (response.content_length or 0) > max_bytes:
                    raise KeySetError(too_big)
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise KeySetError(too_big)
        except TimeoutError:
            raise KeySetError(f"{url} did not answer in {FETCH_TIMEOUT_SECONDS:g} s") from None
        return json.loads(body)

    async def fetch() -> dict:
        uri = jwks_uri
        if uri is None:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await get_json(discovery)
            if not isinstance(document, dict):
                raise KeySetError(f"{discovery} is not a JSON object")
            if document.get("issuer") != issuer:
                raise KeySetError(
                    f"{discovery} says the issuer is {str(document.get('issuer'))[:200]!r}, "
                    f"not OAUTH2_ISSUER {issuer!r}: they must be identical (OIDC Discovery 4.3), "
                    "as tokens carry the provider's value in `iss`"
                )
            uri = document.get("jwks_uri")
            if not isinstance(uri, str):
                raise KeySetError(f"{discovery} names no jwks_uri")
        return await get_json(uri)

    return fetch
