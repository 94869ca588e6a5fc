"""Signed-chunk uploads re-signed and verified: AWS's published example, any split of the input,
bad input, forged chunks.

The known answers are those of AWS's "Transferring Payload in Multiple Chunks" example (66,560
bytes of ``a`` in chunks of 64 KiB, 1 KiB and 0 under the documentation's example key on
20130524, seed ``4f232c…``) and of its trailing-headers example (a ``x-amz-checksum-crc32c``
trailer after the chain's ``2ca2ab…``): the chain we produce for the deployment's key is exactly
what S3 computes to check it.
"""

from __future__ import annotations

import hashlib
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alien.errors import Unauthenticated, ValidationError
from alien.platforms.aws.signed_chunks import (
    MAX_CHUNK,
    ChunkSigner,
    SignedChunkStream,
    signing_key,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
KEY = signing_key(SECRET, "20130524", "us-east-1", "s3")
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_CHAIN = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
CALLER = "0" * 64  # the caller's own (dummy-key) signatures: replaced, never read


def signer(previous: str = SEED) -> ChunkSigner:
    return ChunkSigner(key=KEY, amz_date=DATE, scope=SCOPE, previous=previous)


def body(chunks: list[bytes], signatures: list[str], trailer: bytes = b"") -> bytes:
    out = b""
    for data, signature in zip(chunks, signatures, strict=False):
        out += f"{len(data):x};chunk-signature={signature}\r\n".encode() + data + b"\r\n"
    final = signatures[len(chunks)]
    return out + f"0;chunk-signature={final}\r\n".encode() + trailer + b"\r\n"


AWS_DATA = [b"a" * 65536, b"a" * 1024]
AWS_BODY = body(AWS_DATA, AWS_CHAIN)
CALLER_BODY = body(AWS_DATA, [CALLER] * 3)


def resign(pieces: list[bytes], **options: object) -> bytes:
    resigner = SignedChunkStream(resign=signer(), trailer=False, **options)  # type: ignore[arg-type]
    out = b"".join(part for piece in pieces for part in resigner.feed(piece))
    resigner.end()
    return out


def test_the_chain_is_aws_published_example() -> None:
    assert ChunkSigner.seeded(SECRET, DATE, "us-east-1", "s3", SEED) == signer()
    chain = signer()
    assert chain.chunk(_sha256(AWS_DATA[0])) == AWS_CHAIN[0]
    assert chain.chunk(_sha256(AWS_DATA[1])) == AWS_CHAIN[1]
    assert chain.chunk(_sha256(b"")) == AWS_CHAIN[2]


def test_the_trailer_signature_is_aws_published_example() -> None:
    chain = signer("2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992")
    assert chain.trailer(b"x-amz-checksum-crc32c:sOO8/Q==\n") == (
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"
    )


def test_a_callers_body_comes_out_as_aws_example_body() -> None:
    assert resign([CALLER_BODY], decoded_length=66560) == AWS_BODY


@given(st.lists(st.integers(min_value=0, max_value=len(CALLER_BODY)), max_size=12))
def test_any_split_of_the_input_gives_the_same_output(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(CALLER_BODY)]
    pieces = [CALLER_BODY[a:b] for a, b in itertools.pairwise(edges)]
    assert resign(pieces) == AWS_BODY


@given(st.lists(st.binary(max_size=300), max_size=5), st.data())
def test_the_body_keeps_its_length_and_its_data(chunks: list[bytes], data: st.DataObject) -> None:
    chunks = [chunk for chunk in chunks if chunk]
    caller = body(chunks, [CALLER] * (len(chunks) + 1))
    size = data.draw(st.integers(min_value=1, max_value=64))
    out = resign([caller[i : i + size] for i in range(0, len(caller), size)])
    assert len(out) == len(caller)
    assert out.replace(b"chunk-signature=", b"") != caller.replace(b"chunk-signature=", b"")
    expected = signer()
    assert out == body(chunks, [expected.chunk(_sha256(chunk)) for chunk in [*chunks, b""]])


def test_uppercase_and_padded_sizes_are_kept_as_written() -> None:
    caller = b"0010;chunk-signature=" + CALLER.encode() + b"\r\n" + b"x" * 16 + b"\r\n"
    caller += b"0;chunk-signature=" + CALLER.encode() + b"\r\n\r\n"
    out = resign([caller])
    assert out.startswith(b"0010;chunk-signature=") and len(out) == len(caller)


def test_the_trailer_is_signed_after_the_final_chunk() -> None:
    trailer = (
        b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" + CALLER.encode() + b"\r\n"
    )
    caller = body([b"hello"], [CALLER, CALLER], trailer)
    resigner = SignedChunkStream(resign=signer(), trailer=True, decoded_length=5)
    out = b"".join(resigner.feed(caller))
    resigner.end()
    expected = signer()
    chain = [expected.chunk(_sha256(b"hello")), expected.chunk(_sha256(b""))]
    signature = expected.trailer(b"x-amz-checksum-crc32c:sOO8/Q==\n")
    wanted = b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:" + signature.encode()
    assert out == body([b"hello"], chain, wanted + b"\r\n")
    assert len(out) == len(caller)


@pytest.mark.parametrize(
    ("caller", "message"),
    [
        (b"zz;chunk-signature=" + CALLER.encode() + b"\r\n", "chunk header"),
        (b"5;chunk-signature=abc\r\n", "chunk header"),
        (b"5\r\nhello\r\n", "chunk header"),
        (b"5;chunk-signature=" + CALLER.encode() + b";x=y\r\n", "chunk header"),
        (f"{MAX_CHUNK + 1:x};chunk-signature={CALLER}\r\n".encode(), "at most"),
        (b"2;chunk-signature=" + CALLER.encode() + b"\r\nhello\r\n", "longer than its size"),
        (b"5;chunk-signature=" + CALLER.encode() + b"\nhello\r\n", "CRLF"),
        (b"1" * 9000, "longer than"),
        (body([], [CALLER]) + b"more", "after the end"),
        (body([], [CALLER])[:-2] + b"x\r\n", "after the final chunk"),
    ],
)
def test_malformed_bodies_are_refused(caller: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        resign([caller])
    assert refused.value.field == "body"


def test_a_body_that_stops_short_is_refused_at_its_end() -> None:
    resigner = SignedChunkStream(resign=signer(), trailer=False)
    assert resigner.feed(CALLER_BODY[:-10]) != []
    with pytest.raises(ValidationError, match="ended before its final chunk"):
        resigner.end()


def test_sizes_must_add_up_to_the_declared_length() -> None:
    with pytest.raises(ValidationError, match="x-amz-decoded-content-length 5"):
        resign([CALLER_BODY], decoded_length=5)


def test_a_trailer_without_its_signature_is_refused() -> None:
    caller = body([b"hi"], [CALLER, CALLER], b"x-amz-checksum-crc32:AAAAAA==\r\n")
    resigner = SignedChunkStream(resign=signer(), trailer=True)
    with pytest.raises(ValidationError, match="no x-amz-trailer-signature"):
        resigner.feed(caller)


# --- verifying the caller's chain (the loopback proxy, which knows the session's key) ----------


def verify(pieces: list[bytes], *, trailer: bool = False) -> bytes:
    stream = SignedChunkStream(verify=signer(), trailer=trailer)
    out = b"".join(part for piece in pieces for part in stream.feed(piece))
    stream.end()
    return out


@given(st.lists(st.integers(min_value=0, max_value=len(AWS_BODY)), max_size=12))
def test_a_genuine_chain_passes_through_byte_for_byte(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(AWS_BODY)]
    assert verify([AWS_BODY[a:b] for a, b in itertools.pairwise(edges)]) == AWS_BODY


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_forged_signature_is_refused_before_its_chunk_is_passed_on(position: int) -> None:
    chain = list(AWS_CHAIN)
    chain[position] = chain[position][:-1] + ("0" if chain[position][-1] != "0" else "1")
    stream = SignedChunkStream(verify=signer(), trailer=False)
    passed: list[bytes] = []
    with pytest.raises(Unauthenticated, match="not signed with the debug session's key") as refused:
        for piece in body(AWS_DATA, chain):
            passed.extend(stream.feed(bytes([piece])))
    assert refused.value.details["aws_code"] == "SignatureDoesNotMatch"
    before = b"".join(  # only the chunks before the forged one went on
        f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"
        for data, sig in zip(AWS_DATA[:position], AWS_CHAIN, strict=False)
    )
    assert b"".join(passed) == before


def test_changed_data_under_a_genuine_signature_is_refused() -> None:
    tampered = AWS_BODY.replace(b"a" * 1024 + b"\r\n", b"b" + b"a" * 1023 + b"\r\n")
    assert tampered != AWS_BODY
    with pytest.raises(Unauthenticated):
        verify([tampered])


def test_a_chain_from_another_seed_is_refused() -> None:
    other = ChunkSigner(key=KEY, amz_date=DATE, scope=SCOPE, previous="1" * 64)
    forged = body(AWS_DATA, [other.chunk(_sha256(d)) for d in [*AWS_DATA, b""]])
    with pytest.raises(Unauthenticated):
        verify([forged])


def test_the_trailer_signature_is_verified_too() -> None:
    chain = signer()
    signatures = [chain.chunk(_sha256(b"hello")), chain.chunk(_sha256(b""))]
    genuine = chain.trailer(b"x-amz-checksum-crc32c:sOO8/Q==\n")
    for signature, accepted in ((genuine, True), (CALLER, False)):
        trailer = f"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:{signature}\r\n"
        caller = body([b"hello"], signatures, trailer.encode())
        if accepted:
            assert verify([caller], trailer=True) == caller
        else:
            with pytest.raises(Unauthenticated, match="the trailer"):
                verify([caller], trailer=True)


def test_verifying_and_resigning_at_once() -> None:
    other_key = signing_key("another secret", "20130524", "us-east-1", "s3")
    ours = ChunkSigner(key=other_key, amz_date=DATE, scope=SCOPE, previous="2" * 64)
    stream = SignedChunkStream(verify=signer(), resign=ours, trailer=False)
    out = b"".join(stream.feed(AWS_BODY))
    stream.end()
    again = ChunkSigner(key=other_key, amz_date=DATE, scope=SCOPE, previous="2" * 64)
    assert out == body(AWS_DATA, [again.chunk(_sha256(d)) for d in [*AWS_DATA, b""]])


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
