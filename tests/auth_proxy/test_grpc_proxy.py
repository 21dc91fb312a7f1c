"""`grpc_proxy`'s pure rules: metadata values must be printable ASCII (refused at once, not a
call that hangs), and the address in a gRPC peer string."""

from __future__ import annotations

import grpc
import pytest

from auth_proxy import refusals
from auth_proxy.grpc_proxy import checked_metadata, peer_address

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("metadata", "refused"),
    [
        ([("authorization", "Bearer abc"), ("x-request-id", "r-1")], None),
        ([("trace-bin", b"\x00\xff")], None),
        ([("x-foo", "a\x01b")], "'x-foo'"),
        ([("x-foo", b"\xff")], "'x-foo'"),
        ([("x-foo", "caf\u00e9")], "'x-foo'"),
    ],
)
def test_grpc_metadata_values_are_printable_ascii(metadata, refused):
    if refused is None:
        assert checked_metadata(metadata) == tuple(metadata)
    else:
        with pytest.raises(refusals.Refusal) as refusal:
            checked_metadata(metadata)
        assert refused in refusal.value.description
        assert refusals.grpc_code(refusal.value) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:10.0.0.1:5000", "10.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("unix:/x", None), ("", None)],
)
def test_peer_addresses(peer, address):
    assert peer_address(peer) == address
