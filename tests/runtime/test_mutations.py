"""Random mutations of every genuine sample are rejected with a named check: no crash, no acceptance.

Mutations hit what the verifier must protect: the signed region, the signature, the certificates that
come with the evidence, and the length fields (truncation, insertion, deletion shift every later
field). `make test` runs a bounded number of examples per sample; `make test-full` runs 10,000.

What is not mutated, and why: bytes after the last length-delimited structure of a DCAP quote or an
Azure HCL report (genuine files carry unsigned padding or, in one published quote, a text note there;
a parser that follows the length fields never reads it, so no verifier can protect it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave_runtime.attest import CHECKS, Collateral, VerificationError, verify
from enclave_runtime.attest.collateral import decode_evidence
from tests.runtime.vectors import KIND, manifest, path, read, when


@dataclass(frozen=True)
class Sample:
    entry: dict[str, Any]

    @property
    def kind(self) -> str:
        return KIND.get(self.entry["kind"], self.entry["kind"])

    def evidence(self) -> bytes:
        return decode_evidence(read(self.entry["file"]))

    def covered(self) -> int:
        """How many leading bytes the verifier must protect (the rest is unsigned trailing padding)."""
        return int(self.entry["fields"].get("total_used") or len(self.evidence()))


def _genuine() -> list[Any]:
    return [
        pytest.param(Sample(e), id=e["file"].split("/")[-1])
        for e in manifest()
        if e["verify_at"] and e["expect"] == "valid"
    ]


@cache
def _collateral(files: tuple[str, ...]) -> Collateral:
    return Collateral.from_files(path(f) for f in files)


def _assert_rejected(sample: Sample, evidence: bytes, collateral: Collateral | None = None) -> None:
    entry = sample.entry
    try:
        claims = verify(
            sample.kind,
            evidence,
            collateral=collateral or _collateral(tuple(entry.get("with", []))),
            at=when(entry["verify_at"]),
        )
    except VerificationError as exc:
        assert exc.check in CHECKS and exc.message
        return
    pytest.fail(f"mutated {entry['file']} was ACCEPTED: {claims.as_dict()}")


def mutations(data: bytes, covered: int) -> st.SearchStrategy[bytes]:
    """One edit of `data` that changes its first `covered` bytes.

    Inserting a byte equal to the one after it, or deleting one equal to its neighbour, near the end of
    the covered region is the same edit as one in the padding after it; the filter drops exactly those.
    """
    return _edits(data, covered).filter(lambda mutated: mutated[:covered] != data[:covered])


@st.composite
def _edits(draw: st.DrawFn, data: bytes, covered: int) -> bytes:
    op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
    if op == "truncate":
        return data[: draw(st.integers(0, covered - 1))]
    at = draw(st.integers(0, covered - 1))
    if op == "flip":
        return data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if op == "set":
        value = draw(st.integers(0, 255).filter(lambda v: v != data[at]))
        return data[:at] + bytes([value]) + data[at + 1 :]
    if op == "insert":
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at:]
    return data[:at] + data[at + 1 :]


def _binary(sample: Sample) -> bool:
    return sample.kind != "azure-vtpm"


@pytest.mark.parametrize("sample", [p for p in _genuine() if _binary(p.values[0])])
def test_mutated_evidence_is_rejected(sample: Sample) -> None:
    original = sample.evidence()
    _assert_rejected_unchanged_baseline(sample, original)

    @given(mutations(original, sample.covered()))
    def check(mutated: bytes) -> None:
        _assert_rejected(sample, mutated)

    check()


def _assert_rejected_unchanged_baseline(sample: Sample, original: bytes) -> None:
    """The unmutated sample verifies: a rejection below is due to the mutation, not the setup."""
    entry = sample.entry
    verify(sample.kind, original, collateral=_collateral(tuple(entry.get("with", []))), at=when(entry["verify_at"]))


@pytest.mark.parametrize("sample", [p for p in _genuine() if p.values[0].kind == "amd-sev-snp"])
def test_mutated_vcek_is_rejected(sample: Sample) -> None:
    """The endorsement that comes with SNP evidence: any edit of the VCEK breaks its chain or its key."""
    vcek_file, *rest = sample.entry["with"]
    vcek = Collateral.from_files([path(vcek_file)]).certificates[0]
    from cryptography.hazmat.primitives.serialization import Encoding

    der = vcek.public_bytes(Encoding.DER)
    chain = _collateral(tuple(rest))

    @given(mutations(der, len(der)))
    def check(mutated: bytes) -> None:
        collateral = Collateral(certificates=list(chain.certificates))
        try:
            collateral.add(mutated, "mutated VCEK")
        except VerificationError:
            return  # unreadable as a certificate: rejected before verification
        _assert_rejected(sample, sample.evidence(), collateral)

    check()


def _vtpm_fields(doc: dict[str, Any]) -> dict[str, bytes]:
    quote = doc["quote"]
    fields = {"quote.message": bytes(quote["message"]), "quote.signature": bytes(quote["signature"]),
              "report": bytes(doc["report"]), "vcek": doc["vcek"].encode()}
    fields.update({f"quote.pcrs[{i}]": bytes(v) for i, v in enumerate(quote["pcrs"])})
    return fields


def _vtpm_document(doc: dict[str, Any], name: str, value: bytes) -> bytes:
    doc = json.loads(json.dumps(doc))
    if name == "vcek":
        doc["vcek"] = value.decode("latin-1")
    elif name == "report":
        doc["report"] = list(value)
    elif name.startswith("quote.pcrs["):
        doc["quote"]["pcrs"][int(name[11:-1])] = list(value)
    else:
        doc["quote"][name.removeprefix("quote.")] = list(value)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("sample", [p for p in _genuine() if not _binary(p.values[0])])
def test_mutated_vtpm_evidence_is_rejected(sample: Sample) -> None:
    """The vTPM evidence is JSON: mutate the bytes each field decodes to, not the JSON text (a space
    turned into a tab is the same document)."""
    doc = json.loads(sample.evidence())
    fields = _vtpm_fields(doc)
    _assert_rejected_unchanged_baseline(sample, _vtpm_document(doc, "report", fields["report"]))

    @given(st.sampled_from(sorted(fields)).flatmap(lambda n: st.tuples(st.just(n), mutations(fields[n], _covered_vtpm(n, fields)))))
    def check(edit: tuple[str, bytes]) -> None:
        name, value = edit
        _assert_rejected(sample, _vtpm_document(doc, name, value))

    check()


def _covered_vtpm(name: str, fields: dict[str, bytes]) -> int:
    if name == "vcek":  # PEM: the base64 body, not the armour lines or the line breaks
        return len(fields[name].rstrip().rsplit(b"\n", 1)[0])
    if name == "report":  # the HCL header's report_size: what follows is zero padding
        return int.from_bytes(fields[name][8:12], "little")
    return len(fields[name])
