"""RFC 8785 JSON Canonicalization Scheme (JCS) for the value types ccp signs.

What a signature over JSON covers must be one byte string whatever wrote the JSON: JCS fixes it as
ECMAScript `JSON.stringify` output with no whitespace and object members sorted by the UTF-16 code
units of their names, encoded as UTF-8 (RFC 8785 §3.2). This module implements exactly that for
the types the approved measurements contain — objects with string names, arrays, strings, integers,
booleans and null — and refuses everything else, floats included: RFC 8785 serializes numbers as
IEEE 754 doubles with ECMAScript's shortest round-trip form (§3.2.2.3), which ccp never needs, so an
integer outside the exactly representable range ±(2**53 - 1) is refused too (I-JSON, RFC 7493).

Strings (§3.2.2.2): `"` and `\\` are escaped, U+0000..U+001F use the short forms `\\b \\t \\n \\f \\r`
where they exist and `\\u00xx` (lowercase hex) otherwise; every other character, non-ASCII included,
is written as itself. Lone surrogates cannot be encoded as UTF-8 and are refused (I-JSON).
"""

from __future__ import annotations

from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
_SHORT = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"', "\\": "\\\\"}


class CanonicalizationError(ValueError):
    """The value holds something JCS (as ccp uses it) does not serialize."""


def _string(text: str) -> str:
    out = ['"']
    for char in text:
        if char in _SHORT:
            out.append(_SHORT[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04x}")
        elif "\ud800" <= char <= "\udfff":
            raise CanonicalizationError(f"string {text!r} holds a lone surrogate, which has no UTF-8 form")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _utf16_key(name: str) -> bytes:
    """Sort key of a member name: its UTF-16 code units, compared as unsigned 16-bit integers."""
    return name.encode("utf-16-be", "surrogatepass")


def _serialize(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalizationError(f"integer {value} is outside ±(2**53 - 1): not exactly a JSON number")
        out.append(str(int(value)))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialize(item, out)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(name, str) for name in value):
            raise CanonicalizationError("object member names must be strings")
        out.append("{")
        for i, name in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(name))
            out.append(":")
            _serialize(value[name], out)
        out.append("}")
    else:
        raise CanonicalizationError(
            f"{type(value).__name__} {value!r} is not canonicalized here (objects, arrays, strings, "
            "integers, booleans and null only; no floats)"
        )


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of `value`."""
    out: list[str] = []
    _serialize(value, out)
    return "".join(out).encode("utf-8")
