"""Azure vTPM evidence: the genuine Genoa CVM sample verifies with exact claims; each broken link is named."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave_runtime.attest import Collateral, VerificationError, verify
from enclave_runtime.attest.azure_vtpm import AzureVtpmClaims
from enclave_runtime.attest.hcl import HclReport
from tests.runtime.vectors import manifest, path, read, when

SAMPLE = "tpm/azure_cvm_genoa_vtpm_evidence.json"
AT = when("2025-06-01T00:00:00+00:00")
RUNTIME_DATA = 1236  # HCL header (32) + SNP report (1184) + runtime-data header (20)


def entry(name: str) -> dict[str, Any]:
    return next(e for e in manifest() if e["file"] == name)


def amd_chain() -> Collateral:
    return Collateral.from_files([path("amd-sev-snp/ask_ark_genoa.pem")])


def check(evidence: bytes) -> AzureVtpmClaims:
    claims = verify("azure-vtpm", evidence, collateral=amd_chain(), at=AT)
    assert isinstance(claims, AzureVtpmClaims)
    return claims


def failure(evidence: bytes) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        check(evidence)
    return caught.value


def edited(change: Any) -> bytes:
    document = json.loads(read(SAMPLE))
    change(document)
    return json.dumps(document).encode()


def test_genuine_sample_verifies_with_the_manifest_claims() -> None:
    claims = check(read(SAMPLE)).as_dict()
    fields = entry(SAMPLE)["fields"]
    assert claims["nonce"] == fields["extraData"]
    assert claims["pcr0"] == "afd689d0bb1c5f36f023fbaf574135f555a28a10c1f6b938d2a25e70c7783338"
    assert claims["pcr0"].startswith(fields["pcr0"].rstrip("…"))
    assert [f"pcr{i}" in claims for i in range(24)] == [True] * 24
    assert claims["pcr11"] == "00" * 32
    assert claims["anchor"] == "amd-ark-genoa"
    assert claims["debug"] is False and claims["simulated"] is False
    assert claims["vm_configuration"] == {
        "console-enabled": True,
        "root-cert-thumbprint": "6nZZnYaJc4KqUZ_yvA-mucFdYNouvlPnITnNMXsHl-0",
        "secure-boot": True,
        "tpm-enabled": True,
        "tpm-persisted": True,
        "vmUniqueId": "390CBCF5-6C67-4D9B-98EF-C3F1699CC8FC",
    }
    assert claims["user_data"] == "00" * 64
    assert "ak_public" not in claims and "pcrs" not in claims


def test_snp_claims_are_those_of_the_embedded_report() -> None:
    snp = check(read(SAMPLE)).as_dict()["snp"]
    fields = entry("amd-sev-snp/snp_azure_genoa_v3_report.bin")["fields"]
    for name in ("version", "vmpl", "measurement", "report_data", "host_data", "chip_id"):
        assert snp[name] == fields[name], name
    assert hex(snp["policy"]) == fields["policy"]
    assert snp["debug"] is fields["policy_debug_allowed"]
    assert snp["reported_tcb"] == fields["reported_tcb"]
    assert snp["signing_key"] == "vcek" and snp["anchor"] == "amd-ark-genoa"


def test_ak_public_is_the_hcl_ak() -> None:
    claims = check(read(SAMPLE))
    assert isinstance(claims.ak_public, rsa.RSAPublicKey)
    assert claims.ak_public.key_size == 2048
    hcl = HclReport.parse(bytes(json.loads(read(SAMPLE))["report"]))
    runtime = json.loads(hcl.runtime_data)
    n = next(k["n"] for k in runtime["keys"] if k["kid"] == "HCLAkPub")
    assert n.startswith("v5q34gAAqd1KNv4")
    assert claims.ak_public.public_numbers().n.to_bytes(256, "big")[:4].hex() == "bf9ab7e2"


def test_hex_and_base64_byte_fields_are_accepted() -> None:
    def encode(document: dict[str, Any]) -> None:
        document["report"] = bytes(document["report"]).hex()
        document["quote"]["signature"] = base64.b64encode(bytes(document["quote"]["signature"])).decode()

    assert check(edited(encode)).as_dict() == check(read(SAMPLE)).as_dict()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tpm/derived_azure_vtpm_evidence_pcr7_flipped.json", "binding"),
        ("tpm/derived_azure_vtpm_evidence_quote_sig_flipped.json", "signature"),
    ],
)
def test_derived_samples_fail_the_named_check(name: str, expected: str) -> None:
    assert entry(name)["expect"] == "invalid"
    assert failure(read(name)).check == expected


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (b"390CBCF5", b"390CBCF6"),  # still valid JSON: another vmUniqueId
        (b'"secure-boot":true', b'"secure-boot":t ue'),  # no longer JSON: refused before it is read
    ],
)
def test_runtime_data_edited_by_one_byte_fails_binding(before: bytes, after: bytes) -> None:
    def edit(document: dict[str, Any]) -> None:
        report = document["report"]
        offset = RUNTIME_DATA + bytes(report[RUNTIME_DATA:]).index(before)
        report[offset : offset + len(after)] = list(after)

    error = failure(edited(edit))
    assert error.check == "binding"
    assert "runtime data" in error.message and "b581f12e29a2d7d6" in error.message


def test_unsigned_hcl_header_byte_fails_structure() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["report"][20] ^= 0x01  # reserved

    assert failure(edited(edit)).check == "structure"


def test_nonzero_padding_fails_structure() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["report"][-1] = 1

    assert failure(edited(edit)).check == "structure"


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (b"{not json", "input"),
        (b"[1, 2]", "input"),
        (json.dumps({"quote": {}, "report": [1, 2]}).encode(), "structure"),
        (json.dumps({"quote": [], "report": []}).encode(), "input"),
        (json.dumps({"quote": {"pcrs": []}, "report": [256]}).encode(), "input"),
        (json.dumps({"quote": {}, "report": "zz!"}).encode(), "input"),
    ],
)
def test_garbage_is_refused_with_a_named_check(evidence: bytes, expected: str) -> None:
    assert failure(evidence).check == expected


def test_missing_pcr_value_is_refused() -> None:
    def edit(document: dict[str, Any]) -> None:
        document["quote"]["pcrs"] = document["quote"]["pcrs"][:23]

    error = failure(edited(edit))
    assert (error.check, error.message) == ("input", "PCR 23 is selected by the quote but its value was not supplied")


def test_missing_ask_ark_fails_chain() -> None:
    with pytest.raises(VerificationError) as caught:
        verify("azure-vtpm", read(SAMPLE), at=AT)
    assert caught.value.check == "chain"
