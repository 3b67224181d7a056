"""AMD SEV-SNP verification against genuine reports (shared vectors) and the simulated platform.

Genuine reports pin the layout and the chain to AMD's real ARKs; the simulator covers what no
public sample shows (VLEK, Turin's TCB layout, report versions, TCB/chip mismatches).
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.attest.snp.report import SnpReport
from enclave_runtime.attest.snp.tcb import TcbVersion
from enclave_runtime.attest.snp.vcek import SPL_OIDS
from enclave_runtime.attest.snp.verify import SnpClaims, verify_report
from enclave_runtime.attest.trust import CHAINS
from enclave_runtime.simulate.ca import issue, rsa_key
from enclave_runtime.simulate.snp import SimulatedSnp
from tests.runtime.vectors import manifest, path, read, when

KIND = "amd-sev-snp"
GENUINE = {
    "amd-sev-snp/snp_gsg_milan_v2_debugpolicy_report.bin": ("milan", "amd-ark-milan"),
    "amd-sev-snp/snp_trustee_milan_v2_report.bin": ("milan", "amd-ark-milan"),
    "amd-sev-snp/snp_azure_genoa_v3_report.bin": ("genoa", "amd-ark-genoa"),
}
DERIVED = {
    "amd-sev-snp/derived_snp_sig_r_byte_flipped.bin": "signature",
    "amd-sev-snp/derived_snp_measurement_byte_flipped.bin": "signature",
    "amd-sev-snp/derived_snp_policy_debug_bit_set.bin": "signature",
    "amd-sev-snp/derived_snp_truncated.bin": "structure",
}
TRUSTEE = "amd-sev-snp/snp_trustee_milan_v2_report.bin"
GSG_VCEK = "amd-sev-snp/snp_gsg_milan_vcek.der"
AT = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
MEASUREMENT = bytes(range(48))


def entry(file: str, expect: str) -> dict[str, Any]:
    return next(e for e in manifest() if e["file"] == file and e["expect"] == expect)


def collateral(names: list[str]) -> Collateral:
    with warnings.catch_warnings():  # the go-sev-guest VCEK has serial number 0 (cryptography warns)
        warnings.simplefilter("ignore")
        return Collateral.from_files([path(n) for n in names])


def run(
    file: str, expect: str, *, at: dt.datetime | None = None, names: list[str] | None = None
) -> SnpClaims:
    e = entry(file, expect)
    claims = verify(
        KIND, read(file), collateral=collateral(names or e["with"]), at=at or when(e["verify_at"])
    )
    assert isinstance(claims, SnpClaims)
    return claims


def failure(check: str, *args: Any, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        run(*args, **kwargs)
    assert caught.value.check == check, caught.value
    return caught.value


def with_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1 :]


# --- genuine reports -------------------------------------------------------------------------


@pytest.mark.parametrize("file", GENUINE)
def test_genuine_report_verifies_with_manifest_claims(file: str) -> None:
    fields = entry(file, "valid")["fields"]
    product, anchor = GENUINE[file]
    claims = run(file, "valid").as_dict()
    assert {
        k: claims[k] for k in ("measurement", "report_data", "host_data", "chip_id", "vmpl", "version")
    } == {k: fields[k] for k in ("measurement", "report_data", "host_data", "chip_id", "vmpl", "version")}
    assert claims["policy"] == int(fields["policy"], 16)
    assert claims["reported_tcb"] == fields["reported_tcb"]
    assert claims["signing_key"] == ("vcek", "vlek")[fields["signing_key_sel(0=VCEK,1=VLEK)"]]
    assert claims["debug"] is fields["policy_debug_allowed"]
    assert (claims["product"], claims["anchor"], claims["simulated"]) == (product, anchor, False)


def test_claim_names() -> None:
    assert set(run(TRUSTEE, "valid").as_dict()) == {
        "anchor", "version", "product", "signing_key", "measurement", "report_data", "host_data", "chip_id",
        "policy", "vmpl", "guest_svn", "family_id", "image_id", "id_key_digest", "author_key_digest",
        "platform_info", "reported_tcb", "current_tcb", "committed_tcb", "launch_tcb", "debug", "simulated",
    }  # fmt: skip


def test_genuine_v3_layout_fields() -> None:
    report = SnpReport.parse(read("amd-sev-snp/snp_azure_genoa_v3_report.bin"))
    assert report.cpuid == (0x19, 0x11, 0x01)  # Genoa: family 19h, model 11h
    assert report.current_version == (1, 55, 40) and report.launch_mit_vector is None
    assert (report.signature_algo, report.signing_key, report.mask_chip_key) == (1, "vcek", False)


def test_report_of_another_chip_fails_binding_naming_both_chip_ids() -> None:
    e = entry(TRUSTEE, "invalid")
    assert e["with"][0] == GSG_VCEK
    error = failure("binding", TRUSTEE, "invalid")
    assert entry(TRUSTEE, "valid")["fields"]["chip_id"] in error.message
    assert (
        entry("amd-sev-snp/snp_gsg_milan_v2_debugpolicy_report.bin", "valid")["fields"]["chip_id"]
        in error.message
    )


@pytest.mark.parametrize("file", DERIVED)
def test_derived_sample_fails_its_check(file: str) -> None:
    failure(DERIVED[file], file, "invalid")


def test_after_vcek_not_after_fails_validity() -> None:
    error = failure("validity", TRUSTEE, "valid", at=when("2030-01-25T00:00:00+00:00"))
    assert "SEV-VCEK" in error.message


def test_before_vcek_not_before_fails_validity() -> None:
    failure("validity", TRUSTEE, "valid", at=when("2023-01-24T00:00:00+00:00"))


def test_chain_without_ask_fails_chain() -> None:
    ark = [
        c
        for c in collateral(["amd-sev-snp/ask_ark_milan.pem"]).certificates
        if "ARK-Milan" in c.subject.rfc4514_string()
    ]
    report = read(TRUSTEE)
    vcek = collateral(["amd-sev-snp/snp_trustee_milan_vcek.der"]).certificates
    with pytest.raises(VerificationError) as caught:
        verify_report(
            report, Collateral(certificates=vcek + ark), TrustStore(), when("2024-01-01T00:00:00+00:00")
        )
    assert caught.value.check == "chain" and "SEV-Milan" in caught.value.message


def test_without_vcek_fails_chain() -> None:
    failure("chain", TRUSTEE, "valid", names=["amd-sev-snp/ask_ark_milan.pem"])


def test_vcek_carried_by_other_evidence_is_used() -> None:
    e = entry(TRUSTEE, "valid")
    vcek = collateral(["amd-sev-snp/snp_trustee_milan_vcek.der"]).certificates
    claims = verify_report(
        read(TRUSTEE), collateral(["amd-sev-snp/ask_ark_milan.pem"]), TrustStore(), when(e["verify_at"]), vcek
    )
    assert claims.measurement.hex() == e["fields"]["measurement"]


def test_signature_algo_2_fails_structure() -> None:
    report = with_byte(read(TRUSTEE), 0x34, 2)
    with pytest.raises(VerificationError) as caught:
        SnpReport.parse(report)
    assert caught.value.check == "structure" and "signature_algo is 2" in caught.value.message


@pytest.mark.parametrize(
    ("offset", "value", "expected"),
    [
        (0x00, 4, "version is 4"),  # no version 4 layout
        (0x48, 0b11100, "selector (flags bits 2..4) is 7"),  # no signing key
        (0x2A0 + 60, 1, "signature r has non-zero bytes"),
        (0x2E8 + 50, 1, "signature s has non-zero bytes"),
        (0x49F, 1, "after the signature"),  # unsigned tail must be zero, or mutations there would pass
    ],
)
def test_malformed_report_fails_structure(offset: int, value: int, expected: str) -> None:
    with pytest.raises(VerificationError) as caught:
        SnpReport.parse(with_byte(read(TRUSTEE), offset, value))
    assert caught.value.check == "structure" and expected in caught.value.message


def test_oversized_report_fails_structure() -> None:
    with pytest.raises(VerificationError) as caught:
        verify(KIND, read(TRUSTEE) + b"\0", collateral=collateral(entry(TRUSTEE, "valid")["with"]), at=AT)
    assert caught.value.check == "structure"


@pytest.mark.parametrize(
    ("file", "root"),
    [
        ("amd-sev-snp/ask_ark_milan.pem", "amd-ark-milan"),
        ("amd-sev-snp/ask_ark_genoa.pem", "amd-ark-genoa"),
        ("amd-sev-snp/ask_ark_turin_vcek.pem", "amd-ark-turin"),
        ("amd-sev-snp/ask_ark_milan_vlek.pem", "amd-ark-milan"),
        ("amd-sev-snp/ask_ark_genoa_vlek.pem", "amd-ark-genoa"),
        ("amd-sev-snp/ask_ark_turin_vlek.pem", "amd-ark-turin"),
    ],
)
def test_amd_intermediates_chain_to_pinned_arks(file: str, root: str) -> None:
    ask, ark = collateral([file]).certificates
    anchor, chain = CHAINS.verify(ask, [ark], TrustStore(), "amd", AT)
    assert (anchor.name, chain) == (root, [ask, ark])


# --- TCB layouts ------------------------------------------------------------------------------


def test_tcb_layouts() -> None:
    assert TcbVersion("milan", 0x7308000000000003).components == {
        "bl_spl": 3,
        "tee_spl": 0,
        "snp_spl": 8,
        "ucode_spl": 115,
    }
    assert TcbVersion("turin", 0x4800000003000201).components == {
        "fmc_spl": 1, "bl_spl": 2, "tee_spl": 0, "snp_spl": 3, "ucode_spl": 72,
    }  # fmt: skip
    spl = {"fmc_spl": 1, "bl_spl": 2, "tee_spl": 0, "snp_spl": 3, "ucode_spl": 72}
    assert TcbVersion.encode("turin", spl).raw == 0x4800000003000201


# --- simulated platform -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return rsa_key(2048), rsa_key(2048)


def simulated(
    keys: tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey],
    product: str = "milan",
    signing_key: str = "vcek",
    **kw: Any,
) -> SimulatedSnp:
    return SimulatedSnp(product, signing_key, AT, ark_key=keys[0], ask_key=keys[1], **kw)


def verify_simulated(
    sim: SimulatedSnp, report: bytes, certificates: list[x509.Certificate] | None = None
) -> SnpClaims:
    store = TrustStore(simulation_roots=[sim.root])
    claims = verify(
        KIND, report, collateral=Collateral(certificates=certificates or sim.certificates), store=store, at=AT
    )
    assert isinstance(claims, SnpClaims)
    return claims


@pytest.mark.parametrize(
    ("product", "signing_key", "version"),
    [
        ("milan", "vcek", 2),
        ("milan", "vcek", 3),
        ("genoa", "vlek", 3),
        ("turin", "vcek", 5),
        ("turin", "vlek", 3),
    ],
)
def test_simulated_report_verifies_with_simulation_root(
    rsa_keys: Any, product: str, signing_key: str, version: int
) -> None:
    sim = simulated(rsa_keys, product, signing_key)
    report = sim.report(
        measurement=MEASUREMENT, report_data=b"nonce", host_data=b"policy", version=version, vmpl=1
    )
    assert len(report) == 1184
    claims = verify_simulated(sim, report)
    expected_tcb = {"milan": {"bl_spl": 3, "tee_spl": 0, "snp_spl": 8, "ucode_spl": 115, "raw": "0x7308000000000003"},
                    "genoa": {"bl_spl": 10, "tee_spl": 0, "snp_spl": 23, "ucode_spl": 84, "raw": "0x541700000000000a"},
                    "turin": {"fmc_spl": 1, "bl_spl": 2, "tee_spl": 0, "snp_spl": 3, "ucode_spl": 72,
                              "raw": "0x4800000003000201"}}[product]  # fmt: skip
    assert (claims.anchor, claims.simulated, claims.debug) == ("simulation", True, False)
    assert (claims.product, claims.signing_key, claims.version, claims.vmpl) == (
        product,
        signing_key,
        version,
        1,
    )
    assert claims.measurement == MEASUREMENT
    assert claims.report_data == b"nonce".ljust(64, b"\0") and claims.host_data == b"policy".ljust(32, b"\0")
    assert claims.reported_tcb == expected_tcb
    assert claims.chip_id == (sim.chip_id if signing_key == "vcek" else bytes(64))
    assert claims.policy == 0x30000


def test_simulated_report_without_simulation_root_fails_root(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys)
    with pytest.raises(VerificationError) as caught:
        verify(
            KIND,
            sim.report(measurement=MEASUREMENT),
            collateral=Collateral(certificates=sim.certificates),
            at=AT,
        )
    assert caught.value.check == "root"


def test_simulated_debug_and_policy(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys)
    claims = verify_simulated(sim, sim.report(measurement=MEASUREMENT, debug=True, policy=0x30001))
    assert (claims.policy, claims.debug, claims.as_dict()["debug"]) == (0xB0001, True, True)


def test_reported_tcb_other_than_vceks_fails_binding(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys)
    report = sim.report(
        measurement=MEASUREMENT, tcb={"bl_spl": 3, "tee_spl": 0, "snp_spl": 9, "ucode_spl": 115}
    )
    with pytest.raises(VerificationError) as caught:
        verify_simulated(sim, report)
    assert caught.value.check == "binding" and "'snp_spl': 9" in caught.value.message


def test_turin_vcek_without_fmc_extension_fails_chain(rsa_keys: Any) -> None:
    turin = simulated(rsa_keys, "turin")
    leaf = turin.leaf.certificate
    amd = [e.value for e in leaf.extensions if isinstance(e.value, x509.UnrecognizedExtension)]
    without_fmc = [e for e in amd if e.oid != SPL_OIDS["fmc_spl"]]
    assert len(without_fmc) == len(amd) - 1
    reissued = issue(
        "SEV-VCEK", turin.leaf.key, turin.ask, ca=False, not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc, extensions=without_fmc, rsa_pss=True,
    )  # fmt: skip
    with pytest.raises(VerificationError) as caught:
        verify_simulated(
            turin, turin.report(measurement=MEASUREMENT), [reissued.certificate, *turin.certificates[1:]]
        )
    assert caught.value.check == "chain" and "fmc_spl" in caught.value.message


def test_tampered_simulated_report_fails_signature(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys, "genoa", "vlek")
    report = sim.report(measurement=MEASUREMENT)
    with pytest.raises(VerificationError) as caught:
        verify_simulated(sim, with_byte(report, 0x50, report[0x50] ^ 1))
    assert caught.value.check == "signature"


def test_vlek_report_with_only_a_vcek_fails_chain(rsa_keys: Any) -> None:
    vlek, vcek = simulated(rsa_keys, signing_key="vlek"), simulated(rsa_keys)
    with pytest.raises(VerificationError) as caught:
        verify_simulated(vlek, vlek.report(measurement=MEASUREMENT), vcek.certificates)
    assert caught.value.check == "chain" and "VLEK" in caught.value.message


def test_cpuid_family_of_another_product_fails_binding(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys, "milan")
    report = sim.report(measurement=MEASUREMENT, version=3)
    assert SnpReport.parse(report).cpuid == (0x19, 0x01, 0x01)
    with pytest.raises(VerificationError) as caught:
        verify_simulated(
            sim, sim.sign(with_byte(report, 0x188, 0x1A))
        )  # a Turin family, signed by a Milan chip
    assert caught.value.check == "binding" and "family is 0x1a" in caught.value.message


def test_masked_chip_id_with_vcek_fails_binding(rsa_keys: Any) -> None:
    sim = simulated(rsa_keys)
    report = sim.report(measurement=MEASUREMENT)
    masked = sim.sign(report[:0x1A0] + bytes(64) + report[0x1E0:])
    with pytest.raises(VerificationError) as caught:
        verify_simulated(sim, masked)
    assert caught.value.check == "binding" and "masked" in caught.value.message


def test_vcek_is_chosen_by_chip_id_among_several() -> None:
    names = [GSG_VCEK, "amd-sev-snp/snp_trustee_milan_vcek.der", "amd-sev-snp/ask_ark_milan.pem"]
    claims = run(TRUSTEE, "valid", names=names)
    assert claims.chip_id.hex() == entry(TRUSTEE, "valid")["fields"]["chip_id"]
