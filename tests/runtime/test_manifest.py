"""Every entry of the shared vectors' manifest, judged as the manifest says a correct verifier judges it.

Evidence entries: the verdict at `verify_at` equals `expect`, and every field the manifest lists equals
the extracted claim (fields that describe the file rather than a claim are named in `DESCRIPTIVE`, so
an unknown field fails the test instead of being skipped). Certificate and collateral entries: each is
checked for what it is (a pinned root, a chain to a pinned root, collateral that loads and whose
signature verifies with its issuer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.attest.trust import CHAINS, PINNED_ROOTS, fingerprint
from tests.runtime.vectors import KIND, manifest, path, read, when

# Manifest fields that describe the sample, not a claim: checked elsewhere in this file or informational.
DESCRIPTIVE = {
    "cose_alg", "cose_tagged", "cert_chain_window", "chain_window", "endorsement_key_window", "file_len",
    "total_used", "tee_type", "signature_algo", "quote.message", "quote.signature", "pcr_selection",
}
# Manifest names for claims the contract names differently.
RENAMED = {
    "debug_mode_pcr0_2_zero": "debug", "policy_debug_allowed": "debug", "td_debug": "debug",
    "sgx_debug": "debug", "extraData": "nonce",
}


def _entries(evidence: bool) -> list[Any]:
    return [
        pytest.param(e, id=f"{e['file']}@{e['verify_at'] or '-'}")
        for e in manifest()
        if (e["verify_at"] is not None) == evidence
    ]


def _verify(entry: dict[str, Any], at: dt.datetime | None = None) -> dict[str, Any]:
    kind = KIND.get(entry["kind"], entry["kind"])
    collateral = Collateral.from_files(path(f) for f in entry.get("with", []) or _parent_with(entry))
    claims = verify(kind, read(entry["file"]), collateral=collateral, at=at or when(entry["verify_at"]))
    return claims.as_dict()


def _parent_with(entry: dict[str, Any]) -> list[str]:
    """A derived sample without `with` is judged with what its genuine parent comes with."""
    parent = entry.get("fields", {}).get("derived_from")
    return next((e.get("with", []) for e in manifest() if e["file"] == parent and e.get("with")), [])


def _expected(name: str, value: Any) -> tuple[str, Any]:
    claim = RENAMED.get(name, name)
    if name.startswith("signing_key_sel"):
        return "signing_key", {0: "vcek", 1: "vlek"}[value]
    if name == "policy":
        return claim, int(value, 16)
    return claim, value


@pytest.mark.parametrize("entry", _entries(evidence=True))
def test_evidence_verdict_and_fields(entry: dict[str, Any]) -> None:
    if entry["expect"] == "invalid":
        with pytest.raises(VerificationError) as raised:
            _verify(entry)
        assert raised.value.check and raised.value.message
        return
    claims = _verify(entry)
    checked = _compare(entry["fields"], claims)
    assert checked >= 2, f"only {checked} fields compared for {entry['file']}"
    if entry["kind"] == "tpm":
        # The vTPM evidence carries the Azure SNP report the manifest describes on its own entry.
        (snp,) = [e for e in manifest() if e["file"] == "amd-sev-snp/snp_azure_genoa_v3_report.bin"]
        assert _compare(snp["fields"], claims["snp"]) >= 10
    assert not claims["simulated"]


def _compare(fields: dict[str, Any], claims: dict[str, Any]) -> int:
    checked = 0
    for name, value in fields.items():
        if name in DESCRIPTIVE:
            continue
        claim, want = _expected(name, value)
        assert claim in claims, f"claim {claim!r} (manifest field {name!r}) is missing: {sorted(claims)}"
        got = claims[claim]
        if isinstance(want, str) and want.endswith("…"):
            assert isinstance(got, str) and got.startswith(want[:-1]), (claim, got, want)
        elif isinstance(want, dict):
            assert {k: got[k] for k in want} == want, (claim, got, want)
        else:
            assert got == want, (claim, got, want)
        checked += 1
    return checked


@pytest.mark.parametrize(
    "entry",
    [e for e in _entries(evidence=True) if e.values[0]["expect"] == "valid"],
)
def test_evidence_is_refused_outside_its_certificates_validity(entry: dict[str, Any]) -> None:
    """The manifest's chain window is where verification holds: one second after it, it does not."""
    fields = entry["fields"]
    window = fields.get("cert_chain_window") or fields.get("chain_window")
    if window is None and "endorsement_key_window" in fields:  # "start..YYYY-MM-DD": end given as a date
        window = [None, fields["endorsement_key_window"].split("..")[1] + "T23:59:59+00:00"]
    if window is None:
        pytest.skip("the manifest gives no chain window for this sample")
    with pytest.raises(VerificationError) as raised:
        _verify(entry, at=when(window[1]) + dt.timedelta(seconds=1))
    assert raised.value.check == "validity"


def _certificates(name: str) -> list[x509.Certificate]:
    return Collateral.from_files([path(name)]).certificates


def _midpoint(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc + (cert.not_valid_after_utc - cert.not_valid_before_utc) / 2


def _rdns(subject: str) -> set[str]:
    return set(subject.split(","))


@pytest.mark.parametrize("entry", _entries(evidence=False))
def test_certificate_and_collateral_entries(entry: dict[str, Any]) -> None:
    name, fields = entry["file"], entry["fields"]
    if name.endswith("hcl_report.bin"):
        from enclave_runtime.attest.hcl import HclReport

        report = HclReport.parse(read(name))
        assert report.snp_report == read("amd-sev-snp/snp_azure_genoa_v3_report.bin")
        return
    if name.endswith(".json"):
        collateral = Collateral.from_files([path(name)])
        (document,) = collateral.documents
        body = document.get("tcbInfo") or document.get("enclaveIdentity")
        assert body is not None and "signature" in document
        assert collateral.document_source(next(iter(document)))== read(name).strip()
        return
    if "crl" in name:
        (crl,) = Collateral.from_files([path(name)]).crls
        issuer_cn = crl.issuer.rfc4514_string()
        assert "Intel SGX" in issuer_cn
        # The root CRL is signed by the pinned Intel root itself.
        if "rootcrl" in name:
            (root,) = _certificates("intel-tdx/intel_sgx_root_ca.pem")
            assert crl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
        return
    certs = _certificates(name)
    if "sha256_der" in fields or name.endswith("intel_sgx_root_ca.pem"):
        (root,) = certs
        pinned = PINNED_ROOTS[fingerprint(root)]
        assert pinned.vendor == {"aws-nitro": "aws-nitro"}.get(entry["kind"], "intel")
        if "sha256_der" in fields:
            assert fingerprint(root) == fields["sha256_der"]
        assert _rdns(root.subject.rfc4514_string()) == _rdns(fields["subject"])
        assert [root.not_valid_before_utc, root.not_valid_after_utc] == [when(v) for v in fields["validity"]]
        if fields.get("key") == "ECDSA P-256":
            assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
            assert root.public_key().curve.name == "secp256r1"
        return
    if "certs" in fields:  # AMD ASK/ASVK + ARK
        assert [_rdns(c.subject.rfc4514_string()) for c in certs] == [_rdns(s) for s in fields["certs"]]
        ask, ark = certs
        anchor, chain = CHAINS.verify(ask, [ark], TrustStore(), "amd", _midpoint(ask))
        generation = fields["certs"][1].split(",")[0].removeprefix("CN=ARK-").lower()
        assert anchor.name == f"amd-ark-{generation}" and chain == [ask, ark]
        return
    # A VCEK: it chains to a pinned ARK through the ASK of its generation.
    (vcek,) = certs
    generation = "genoa" if "genoa" in name else "milan"
    anchor, chain = CHAINS.verify(
        vcek, _certificates(f"amd-sev-snp/ask_ark_{generation}.pem"), TrustStore(), "amd", _midpoint(vcek)
    )
    assert anchor.name == f"amd-ark-{generation}" and len(chain) == 3


def test_every_manifest_entry_is_covered() -> None:
    covered = len(_entries(True)) + len(_entries(False))
    assert covered == len(manifest()) > 40
