"""RFC 8785 canonicalization (enclave_runtime/jcs.py) for the value types the contract signs.

The expected bytes were produced by the maintained `rfc8785` package (Trail of Bits, 0.1.4) and the
first vector is the RFC's own member-sorting example (RFC 8785 §3.2.3)."""

from __future__ import annotations

import pytest

from enclave_runtime.jcs import CanonicalizationError, canonicalize
from enclave_runtime.measurements import ApprovedMeasurements

RFC_SORTING = {
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\U0001f600": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis",
}


def test_rfc_sorting_example_orders_by_utf16_code_units() -> None:
    assert canonicalize(RFC_SORTING).hex() == (
        "7b225c72223a2243617272696167652052657475726e222c2231223a224f6e65222c22c280223a22436f6e74726f6c222c22"
        "c3b6223a224c6174696e20536d616c6c204c6574746572204f205769746820446961657265736973222c22e282ac223a2245"
        "75726f205369676e222c22f09f9880223a22456d6f6a693a204772696e6e696e672046616365222c22efacb3223a22486562"
        "726577204c65747465722044616c6574205769746820446167657368227d"
    )


def test_strings_literals_integers_and_empty_containers() -> None:
    value = {"s": 'a\u0000\u001f\u007f"\\\b\f\n\r\t\u2028é😀', "n": [0, -1, 2**53 - 1, True, False, None], "o": {}, "l": []}
    assert canonicalize(value) == (
        b'{"l":[],"n":[0,-1,9007199254740991,true,false,null],"o":{},'
        b'"s":"a\\u0000\\u001f\x7f\\"\\\\\\b\\f\\n\\r\\t\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80"}'
    )


@pytest.mark.parametrize("value", [1.5, 2**53, -(2**53), {1: "x"}, "\ud800", {"a": {1, 2}}, b"bytes"])
def test_values_outside_what_is_signed_are_refused(value: object) -> None:
    with pytest.raises(CanonicalizationError):
        canonicalize(value)


def test_measurements_digest_is_sha256_of_jcs_document() -> None:
    import hashlib

    m = ApprovedMeasurements.model_validate(
        {"version": "1.0", "nitro": {"pcr0": "ab" * 48}, "sgx": {"mrsigner": "cd" * 32}}
    )
    assert m.canonical_json() == canonicalize(m.document())
    assert m.canonical_json().startswith(b'{"nitro":{"pcr0":"abab')  # defaults filled in, sorted, compact
    assert b'"pin":["pcr0"]' in m.canonical_json() and b'"minSvn":0' in m.canonical_json()
    assert m.digest() == "sha256:" + hashlib.sha256(m.canonical_json()).hexdigest()
    assert m.fingerprint() == m.digest()[7:23]
