"""`rest_proxy`'s pure rules: which headers are hop-by-hop, which paths are closed whatever the
token, and which carry dot segments the upstream client would resolve."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from auth_proxy.rest_proxy import closed_because, forwardable, has_dot_segments

pytestmark = pytest.mark.unit


def test_forwardable_drops_hop_by_hop_headers_and_those_connection_names():
    headers = CIMultiDict(
        [
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "5"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
            ("Host", "x"),
            ("X-Request-Id", "r"),
            ("Content-Type", "a/b"),
        ]
    )
    assert list(forwardable(headers).items()) == [("X-Request-Id", "r"), ("Content-Type", "a/b")]


@pytest.mark.parametrize(
    ("path", "closed"),
    [
        ("/v2/repository", True),
        ("/v2/repository/index", True),
        ("//v2//repository/models/x/unload", True),
        ("/v2/repository/", True),
        ("/v2/repositoryx", False),
        ("/v2/models/repository", False),
        ("/v2/models/cats-dogs-other/infer", False),
        ("/metrics", True),
        ("//metrics/", True),
        ("/metricsx", False),
    ],
)
def test_closed_paths(path, closed):
    assert (closed_because(path) is not None) is closed


@pytest.mark.parametrize(
    ("path", "dotted"),
    [
        ("/v2/x/../repository", True),
        ("/v2/./models", True),
        ("/health/..", True),
        ("/v2/models/a..b/ready", False),
        ("/v2/.well-known", False),
        ("/", False),
    ],
)
def test_dot_segments(path, dotted):
    assert has_dot_segments(path) is dotted
