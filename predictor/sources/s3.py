"""Models on S3 or an S3-compatible store (MinIO, moto), with boto3.

Settings from the variables users already set: the endpoint from `AWS_ENDPOINT_URL` (KServe's)
or else `MLFLOW_S3_ENDPOINT_URL` (MLflow's); credentials from boto3's usual chain
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, …); `S3_VERIFY_SSL=0` turns TLS verification
off, `AWS_CA_BUNDLE` names a CA file. boto3's own retries are off: `sources.resolve` retries
transient failures for a bounded time and ends on permanent ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..setting_types import boolean
from .cache import cannot_write
from .errors import ModelSourceError, SourceUnavailable

PERMANENT_CODES = {
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
    "404": "no such object",
    "NotFound": "no such object",
    "InvalidAccessKeyId": "access denied (unknown access key: check AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "access denied (wrong secret: check AWS_SECRET_ACCESS_KEY)",
    "AccessDenied": "access denied",
    "403": "access denied",
    "InvalidBucketName": "invalid bucket name",
}


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def versioned_uri(self) -> str:
        return f"{self.uri}#{self.etag}"


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None


def _verify() -> bool | str:
    try:
        verify = boolean(os.environ.get("S3_VERIFY_SSL") or "true")
    except ValueError as exc:
        raise ModelSourceError(f"S3_VERIFY_SSL {exc}") from None
    return (os.environ.get("AWS_CA_BUNDLE") or True) if verify else False


def client():
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        s3={"addressing_style": "path"},
    )
    # A fresh session reads the credentials from the environment now, not the default
    # session's cached copy from the first call.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url(), verify=_verify(), config=config)


def parse_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ModelSourceError(f"not an S3 URI: {uri} (expected s3://bucket/key)")
    return parsed.netloc, parsed.path.lstrip("/")


def locate(uri: str) -> S3Object:
    """The `.keras` object a URI names: the key itself, or the one `.keras` under a prefix."""
    bucket, key = parse_uri(uri)
    s3 = client()
    with translated_errors(uri):
        if key.endswith(".keras"):
            head = s3.head_object(Bucket=bucket, Key=key)
            return S3Object(bucket, key, head["ETag"].strip('"'))
        prefix = key if not key or key.endswith("/") else key + "/"
        found = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += [o for o in page.get("Contents", []) if o["Key"].endswith(".keras")]
    if len(found) != 1:
        what = "no .keras object" if not found else f"{len(found)} .keras objects"
        raise ModelSourceError(f"{what} under s3://{bucket}/{prefix}: name the one to serve")
    return S3Object(bucket, found[0]["Key"], found[0]["ETag"].strip('"'))


def download(obj: S3Object, destination: Path) -> None:
    with translated_errors(obj.uri):
        client().download_file(obj.bucket, obj.key, str(destination))


@contextmanager
def translated_errors(uri: str) -> Iterator[None]:
    """Turn boto3's exceptions into `ModelSourceError` (permanent) or `SourceUnavailable`;
    a download that cannot be written (a full disk) passes through as the `OSError` it is."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in PERMANENT_CODES:
            raise ModelSourceError(f"{PERMANENT_CODES[code]}: {uri}") from None
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            raise SourceUnavailable(f"S3 answered {status} {code}: {uri}") from None
        raise ModelSourceError(f"S3 refused ({status} {code}): {uri}") from None
    except (NoCredentialsError, PartialCredentialsError):
        raise ModelSourceError(
            f"no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY): {uri}"
        ) from None
    except (BotoCoreError, OSError) as exc:
        if cannot_write(exc):
            raise  # the cache's fault, not the network's: fetch_into_cache says so, at once
        where = endpoint_url() or "AWS S3"
        raise SourceUnavailable(f"S3 at {where} unreachable ({exc}): {uri}") from None
