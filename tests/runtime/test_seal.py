"""The sealed file format: round trips, and every class of mutation refused without handing out altered plaintext.

The tests use the 4 KiB Tink template so that multi-segment files stay small; segment offsets follow
Tink's AES-GCM-HKDF wire format: a 40-byte stream header (length byte, 32-byte salt, 7-byte nonce
prefix), a first segment of `segment - 40` bytes, then `segment`-byte segments, each with a 16-byte tag.
The key service is a fake: AES-KW under a test key-encryption key, as a cloud KMS would wrap.
"""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave_runtime import seal as sealmod
from enclave_runtime.keyrelease.base import KeyReleaseError, WrappedKey
from enclave_runtime.seal import (
    AUTH_FAILURE, MAGIC, Header, SealError, open_file, open_sealed, read_header, seal, seal_file,
)

KEK = bytes(range(32))
SEG = 4096
STREAM = "AES256_GCM_HKDF_4KB"
TINK_HEADER, TAG = 40, 16
FIRST = SEG - TINK_HEADER - TAG  # plaintext bytes in the first segment
OTHER = SEG - TAG  # plaintext bytes in each later segment
EXPECT = {"collaboration": "oncology", "party": "hospital-a", "dataset": "admissions"}


class FakeWrapper:
    cloud = "aws"

    def wrap(self, data_key: bytes) -> WrappedKey:
        return WrappedKey("aws", "arn:aws:kms:eu-west-1:111122223333:key/party-a", "AES_KW", aes_key_wrap(KEK, data_key))


class FakeReleaser:
    cloud = "aws"

    def __init__(self) -> None:
        self.calls = 0

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        self.calls += 1
        try:
            return aes_key_unwrap(KEK, wrapped.blob)
        except InvalidUnwrap:
            raise KeyReleaseError("fake-kms", "InvalidCiphertextException") from None


def _seal(data: bytes, stream: str = STREAM, **fields: str) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(data), out, wrapper=FakeWrapper(), stream=stream, **{**EXPECT, **fields})
    return out.getvalue()


def _open(sealed: bytes, expect: dict[str, str] = EXPECT, releaser: FakeReleaser | None = None) -> bytes:
    releaser = releaser or FakeReleaser()
    with open_sealed(io.BytesIO(sealed), data_key_for=releaser.unwrap, expect=expect) as chunks:
        return b"".join(chunks)


def _open_partial(sealed: bytes, expect: dict[str, str] = EXPECT) -> tuple[bytes, SealError | None]:
    """What a streaming consumer saw before the error (if any), and the error."""
    seen = bytearray()
    try:
        with open_sealed(io.BytesIO(sealed), data_key_for=FakeReleaser().unwrap, expect=expect) as chunks:
            for chunk in chunks:
                seen += chunk
    except SealError as exc:
        return bytes(seen), exc
    return bytes(seen), None


def _prefix_len(sealed: bytes) -> int:
    return len(MAGIC) + 4 + int.from_bytes(sealed[8:12], "big")


def _segments(sealed: bytes) -> tuple[bytes, list[bytes]]:
    """(prefix + Tink stream header, [ciphertext segments])."""
    start = _prefix_len(sealed) + TINK_HEADER
    bounds = [start, _prefix_len(sealed) + SEG]
    while bounds[-1] < len(sealed):
        bounds.append(bounds[-1] + SEG)
    bounds[-1] = len(sealed)
    return sealed[:start], [sealed[a:b] for a, b in zip(bounds, bounds[1:])]


def _with_header(sealed: bytes, edit: dict) -> bytes:
    """`sealed` with its header JSON replaced by `edit` (canonical, new length), the Tink stream unchanged."""
    body = json.dumps(edit, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + len(body).to_bytes(4, "big") + body + sealed[_prefix_len(sealed):]


def _header_json(sealed: bytes) -> dict:
    return json.loads(sealed[12:_prefix_len(sealed)])


DATA = os.urandom(FIRST + 3 * OTHER + 1000)  # five segments, the last one partial
SEALED = _seal(DATA)


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("size", "segments"),
    [(0, 1), (1, 1), (FIRST, 1), (FIRST + 1, 2), (FIRST + 9 * OTHER, 10), (FIRST + 9 * OTHER + 7, 11)],
)
def test_round_trip_and_exact_ciphertext_size(size: int, segments: int) -> None:
    data = os.urandom(size)
    sealed = _seal(data)
    assert len(sealed) == _prefix_len(sealed) + TINK_HEADER + size + TAG * segments
    assert _open(sealed) == data


def test_round_trip_with_the_default_1mb_segments() -> None:
    data = os.urandom((1 << 20) * 2 + 12345)
    sealed = _seal(data, stream="AES256_GCM_HKDF_1MB")
    assert len(sealed) == _prefix_len(sealed) + TINK_HEADER + len(data) + TAG * 3
    assert _open(sealed) == data


def test_header_is_canonical_and_names_everything() -> None:
    header = read_header(io.BytesIO(SEALED))
    assert header == Header(
        "oncology", "hospital-a", "admissions", FakeWrapper().wrap(aes_key_unwrap(KEK, header.wrapped_key.blob)), STREAM
    )
    assert _header_json(SEALED) == {
        "collaboration": "oncology", "dataset": "admissions", "party": "hospital-a", "stream": STREAM, "version": 1,
        "wrappedKey": header.wrapped_key.to_json(),
    }
    assert SEALED.startswith(header.prefix())


def test_two_seals_of_the_same_data_share_nothing() -> None:
    assert _seal(b"same") != _seal(b"same")  # fresh data key and salt each time


def test_the_callers_files_stay_open() -> None:
    source, sink = io.BytesIO(b"x" * 10), io.BytesIO()
    seal(source, sink, wrapper=FakeWrapper(), stream=STREAM, **EXPECT)
    assert not source.closed and not sink.closed
    reading = io.BytesIO(sink.getvalue())
    with open_sealed(reading, data_key_for=FakeReleaser().unwrap, expect=EXPECT) as chunks:
        assert b"".join(chunks) == b"x" * 10
    assert not reading.closed


# --- header edits -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["collaboration", "party", "dataset"])
def test_header_names_another_than_expected_is_refused_before_key_release(name: str) -> None:
    edited = _with_header(SEALED, {**_header_json(SEALED), name: "other"})
    releaser = FakeReleaser()
    with pytest.raises(SealError) as raised:
        _open(edited, releaser=releaser)
    assert raised.value.check == "expect"
    assert str(raised.value) == f"expect: the file is sealed for {name} 'other', this workload expects {EXPECT[name]!r}"
    assert releaser.calls == 0


@pytest.mark.parametrize("name", ["collaboration", "party", "dataset"])
def test_header_edited_to_match_what_the_workload_expects_fails_authentication(name: str) -> None:
    edited = _with_header(SEALED, {**_header_json(SEALED), name: "other"})
    seen, error = _open_partial(edited, {**EXPECT, name: "other"})
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


@pytest.mark.parametrize(
    ("field", "value"),
    [("cloud", "gcp"), ("keyId", "arn:aws:kms:eu-west-1:111122223333:key/party-b"), ("algorithm", "RSAES_OAEP_SHA_256")],
)
def test_wrapped_key_metadata_edit_fails_authentication(field: str, value: str) -> None:
    header = _header_json(SEALED)
    edited = _with_header(SEALED, {**header, "wrappedKey": {**header["wrappedKey"], field: value}})
    seen, error = _open_partial(edited)
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


def test_wrapped_key_blob_edit_is_refused_by_the_key_service() -> None:
    header = _header_json(SEALED)
    blob = bytearray(read_header(io.BytesIO(SEALED)).wrapped_key.blob)
    blob[0] ^= 1
    import base64

    edited = _with_header(SEALED, {**header, "wrappedKey": {**header["wrappedKey"], "blob": base64.b64encode(blob).decode()}})
    seen, error = _open_partial(edited)
    assert (seen, error.check if error else None) == (b"", "key")
    assert "InvalidCiphertextException" in str(error)


def test_wrapped_key_swapped_for_another_files_fails_authentication() -> None:
    other = _header_json(_seal(b"another dataset"))
    edited = _with_header(SEALED, {**_header_json(SEALED), "wrappedKey": other["wrappedKey"]})
    seen, error = _open_partial(edited)
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


def test_stream_template_edit_fails_authentication() -> None:
    edited = _with_header(SEALED, {**_header_json(SEALED), "stream": "AES256_GCM_HKDF_1MB"})
    assert str(_open_partial(edited)[1]) == f"authentication: {AUTH_FAILURE}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"version": 2}, "header: header field version is 2; this reader reads version 1"),
        ({"version": True}, "header: header field version is True; this reader reads version 1"),
        ({"stream": "AES128_CTR"}, "header: header field stream is 'AES128_CTR', not one of "
                                   "['AES256_GCM_HKDF_1MB', 'AES256_GCM_HKDF_4KB']"),
        ({"party": ""}, "header: header field party must be a non-empty string, got ''"),
        ({"extra": 1}, "header: header fields missing [], unexpected ['extra']"),
        ({"wrappedKey": {"cloud": "aws"}}, "header: header field wrappedKey: wrapped key is missing "
                                           "['algorithm', 'blob', 'keyId']"),
    ],
)
def test_header_field_values_are_checked(edit: dict, message: str) -> None:
    releaser = FakeReleaser()
    with pytest.raises(SealError) as raised:
        _open(_with_header(SEALED, {**_header_json(SEALED), **edit}), releaser=releaser)
    assert (str(raised.value), releaser.calls) == (message, 0)


def test_header_missing_field_and_non_canonical_forms_are_refused() -> None:
    header = _header_json(SEALED)
    del header["dataset"]
    with pytest.raises(SealError, match=r"header fields missing \['dataset'\], unexpected \[\]"):
        _open(_with_header(SEALED, header))
    body = json.dumps(_header_json(SEALED), sort_keys=True).encode()  # with spaces
    spaced = MAGIC + len(body).to_bytes(4, "big") + body + SEALED[_prefix_len(SEALED):]
    with pytest.raises(SealError, match="not canonical JSON"):
        _open(spaced)


def test_base64_with_flipped_unused_bits_is_an_edit() -> None:
    header = _header_json(SEALED)
    text = header["wrappedKey"]["blob"]  # 40 bytes: the last data character carries 4 unused bits
    assert text.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = text[:-3] + alphabet[alphabet.index(text[-3]) ^ 1] + "=="
    edited = _with_header(SEALED, {**header, "wrappedKey": {**header["wrappedKey"], "blob": twin}})
    with pytest.raises(SealError, match="wrappedKey.blob is not canonical base64"):
        _open(edited)


@pytest.mark.parametrize(
    ("sealed", "message"),
    [
        (b"PK\x03\x04" + SEALED[4:], "header: header magic is b'PK\\x03\\x04EAL\\x00', expected b'CCPSEAL\\x00': "
                                     "not a sealed file"),
        (SEALED[:10], "header: the file ends inside the header length: it was truncated"),
        (SEALED[:100], f"header: the file ends inside the header (88 of {_prefix_len(SEALED) - 12} bytes): "
                       "it was truncated"),
        (MAGIC + (1 << 20).to_bytes(4, "big"), "header: header length is 1048576, not within 1..65536: the file "
                                               "is damaged"),
        (b"", "header: header magic is b'', expected b'CCPSEAL\\x00': not a sealed file"),
    ],
)
def test_damaged_prefix_is_named(sealed: bytes, message: str) -> None:
    with pytest.raises(SealError) as raised:
        _open(sealed)
    assert str(raised.value) == message


# --- the stream ---------------------------------------------------------------------------------------

def test_fixture_has_five_segments() -> None:
    _, segments = _segments(SEALED)
    assert [len(s) for s in segments] == [SEG - TINK_HEADER, SEG, SEG, SEG, 1000 + TAG]


@pytest.mark.parametrize("cut", [1, 2, 3, 4])
def test_truncation_at_a_segment_boundary_is_detected(cut: int) -> None:
    head, segments = _segments(SEALED)
    truncated = head + b"".join(segments[:cut])
    seen, error = _open_partial(truncated)
    assert str(error) == f"authentication: {AUTH_FAILURE}"
    assert seen == DATA[: FIRST + (cut - 1) * OTHER]  # the segments before the cut were authenticated


@pytest.mark.parametrize("cut", [1, TAG, SEG // 2, SEG - 1])
def test_truncation_inside_a_segment_is_detected(cut: int) -> None:
    head, segments = _segments(SEALED)
    truncated = head + segments[0] + segments[1][:cut]
    seen, error = _open_partial(truncated)
    assert (seen, str(error)) == (DATA[:FIRST], f"authentication: {AUTH_FAILURE}")


@pytest.mark.parametrize("keep", [0, 1, TINK_HEADER - 1, TINK_HEADER])
def test_truncation_inside_the_stream_header_is_detected(keep: int) -> None:
    seen, error = _open_partial(SEALED[: _prefix_len(SEALED) + keep])
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


def test_dropping_the_last_segment_is_detected() -> None:
    head, segments = _segments(SEALED)
    seen, error = _open_partial(head + b"".join(segments[:-1]))
    assert (seen, str(error)) == (DATA[: FIRST + 3 * OTHER], f"authentication: {AUTH_FAILURE}")


def test_reordered_segments_are_detected_and_nothing_after_the_failure_is_yielded() -> None:
    head, s = _segments(SEALED)
    seen, error = _open_partial(head + s[0] + s[2] + s[1] + s[3] + s[4])
    assert (seen, str(error)) == (DATA[:FIRST], f"authentication: {AUTH_FAILURE}")


def test_segment_swapped_from_another_file_under_the_same_key_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    key = os.urandom(32)
    monkeypatch.setattr(sealmod.secrets, "token_bytes", lambda n: key)
    first, second = _seal(DATA), _seal(DATA)
    assert first[: _prefix_len(first)] == second[: _prefix_len(second)]  # same header, same AAD, same key
    head, a = _segments(first)
    _, b = _segments(second)
    assert _open(head + b"".join(a)) == DATA
    seen, error = _open_partial(head + a[0] + b[1] + a[2] + a[3] + a[4])
    assert (seen, str(error)) == (DATA[:FIRST], f"authentication: {AUTH_FAILURE}")
    seen, error = _open_partial(head + b[0] + a[1] + a[2] + a[3] + a[4])  # the other file's first segment
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


# Fixed bytes, not os.urandom: pytest-xdist workers must collect identical test ids.
@pytest.mark.parametrize(
    "extra", [b"\x00", bytes(range(1, TAG + 1)), bytes(i % 251 for i in range(SEG))], ids=["byte", "tag", "segment"]
)
def test_appended_bytes_are_detected(extra: bytes) -> None:
    seen, error = _open_partial(SEALED + extra)
    assert str(error) == f"authentication: {AUTH_FAILURE}"
    assert DATA.startswith(seen) and len(seen) < len(DATA)


def test_an_empty_file_with_a_segment_appended_is_detected() -> None:
    empty = _seal(b"")
    assert _open(empty) == b""
    assert str(_open_partial(empty + os.urandom(SEG))[1]) == f"authentication: {AUTH_FAILURE}"


@settings(max_examples=150)
@given(position=st.integers(min_value=0, max_value=len(SEALED) - 1), bit=st.integers(min_value=0, max_value=7))
def test_any_bit_flip_is_detected_and_no_altered_plaintext_is_yielded(position: int, bit: int) -> None:
    flipped = bytearray(SEALED)
    flipped[position] ^= 1 << bit
    seen, error = _open_partial(bytes(flipped))
    assert error is not None
    assert DATA.startswith(seen) and len(seen) < len(DATA)
    if position >= _prefix_len(SEALED):  # the stream's own bytes: nothing but authentication can fail
        assert str(error) == f"authentication: {AUTH_FAILURE}"


# --- keys and expectations ------------------------------------------------------------------------------

def test_expect_must_name_exactly_the_three_fields() -> None:
    with pytest.raises(SealError) as raised:
        _open(SEALED, {"collaboration": "oncology", "party": "hospital-a", "datset": "admissions"})
    assert str(raised.value) == (
        "expect: expect must name exactly ['collaboration', 'party', 'dataset']; missing ['dataset'], unknown ['datset']"
    )


def test_a_refused_key_release_is_named() -> None:
    def refuse(wrapped: WrappedKey) -> bytes:
        raise KeyReleaseError("aws-kms", "AccessDeniedException: attestation does not match the key policy")

    with pytest.raises(SealError) as raised:
        with open_sealed(io.BytesIO(SEALED), data_key_for=refuse, expect=EXPECT):
            pass
    assert str(raised.value) == (
        "key: key release for arn:aws:kms:eu-west-1:111122223333:key/party-a refused: "
        "aws-kms: AccessDeniedException: attestation does not match the key policy"
    )


def test_a_data_key_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(SealError) as raised:
        open_sealed(io.BytesIO(SEALED), data_key_for=lambda w: b"k" * 16, expect=EXPECT)
    assert str(raised.value) == "key: the data key is 16 bytes; a version-1 file needs 32"


def test_a_wrong_key_fails_authentication() -> None:
    seen, error = b"", None
    try:
        with open_sealed(io.BytesIO(SEALED), data_key_for=lambda w: bytes(32), expect=EXPECT) as chunks:
            seen = b"".join(chunks)
    except SealError as exc:
        error = exc
    assert (seen, str(error)) == (b"", f"authentication: {AUTH_FAILURE}")


def test_an_opened_file_reads_once() -> None:
    with open_sealed(io.BytesIO(SEALED), data_key_for=FakeReleaser().unwrap, expect=EXPECT) as chunks:
        assert b"".join(chunks) == DATA
        assert chunks.bytes == len(DATA)
        with pytest.raises(SealError, match="already read or closed"):
            list(chunks)


# --- files ------------------------------------------------------------------------------------------------

def test_seal_file_and_open_file_round_trip(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(DATA)
    header = seal_file(tmp_path / "plain", tmp_path / "sealed", wrapper=FakeWrapper(), stream=STREAM, **EXPECT)
    assert read_header(io.BytesIO((tmp_path / "sealed").read_bytes())) == header
    opened = open_file(tmp_path / "sealed", tmp_path / "out", releaser=FakeReleaser(), expect=EXPECT)
    assert (tmp_path / "out").read_bytes() == DATA
    import hashlib

    assert (opened.bytes, opened.sha256, opened.header) == (len(DATA), hashlib.sha256(DATA).hexdigest(), header)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "plain", "sealed"]


def test_open_file_leaves_no_plaintext_when_a_later_segment_fails(tmp_path: Path) -> None:
    head, s = _segments(SEALED)
    (tmp_path / "sealed").write_bytes(head + s[0] + s[1] + s[3] + s[2] + s[4])
    (tmp_path / "out").write_bytes(b"previous output")
    with pytest.raises(SealError, match="the file was modified, truncated or reordered"):
        open_file(tmp_path / "sealed", tmp_path / "out", releaser=FakeReleaser(), expect=EXPECT)
    assert (tmp_path / "out").read_bytes() == b"previous output"  # untouched: the partial result was discarded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "sealed"]


def test_seal_file_leaves_nothing_when_wrapping_fails(tmp_path: Path) -> None:
    class Refusing:
        cloud = "aws"

        def wrap(self, data_key: bytes) -> WrappedKey:
            raise KeyReleaseError("aws-kms", "AccessDeniedException")

    (tmp_path / "plain").write_bytes(b"data")
    with pytest.raises(SealError, match="key: wrapping the data key failed: aws-kms: AccessDeniedException"):
        seal_file(tmp_path / "plain", tmp_path / "sealed", wrapper=Refusing(), **EXPECT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]
