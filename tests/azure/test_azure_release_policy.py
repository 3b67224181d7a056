"""Unit tests of the Azure secure-key-release policy generator and the VM size validation."""

from __future__ import annotations

import pytest

from components.attestation.azure_release_policy import (
    CONTENT_TYPE,
    combine_release_policies,
    decode_release_policy,
    encode_release_policy,
    release_policy,
)
from enclave_runtime.measurements import ApprovedMeasurements
from components.azure.sizes import validate_cvm_size

AUTHORITY = "https://ccpdemo.weu.attest.azure.net"
LAUNCH = "b6" * 48
HOST_DATA = "c7" * 32
MRTD = "d8" * 48
MRENCLAVE = "e9" * 32
MRSIGNER = "fa" * 32


def measurements(**sections: object) -> ApprovedMeasurements:
    return ApprovedMeasurements.model_validate({"version": "t-1", **sections})


def claims(policy: dict) -> list[dict]:
    assert policy["version"] == "1.0.0"
    assert len(policy["anyOf"]) == 1
    assert policy["anyOf"][0]["authority"] == AUTHORITY
    return policy["anyOf"][0]["allOf"]


def test_sev_snp_cvm_launch_measurement_alone_gets_no_policy() -> None:
    """An Azure CVM's launch measurement measures Microsoft's paravisor: never a release pin on its own
    (the CVM path pins the guest's vTPM PCRs instead: tests/azure/test_azure_cvm_guest.py)."""
    with pytest.raises(ValueError, match="azureCvm.pcrs"):
        release_policy(measurements(sevSnp={"launchMeasurement": LAUNCH}), tee="sev-snp", authority=AUTHORITY)


@pytest.mark.parametrize(
    ("section", "container"),
    [({"hostData": HOST_DATA}, False), ({"hostData": HOST_DATA, "launchMeasurement": LAUNCH}, True)],
)
def test_confidential_containers_pin_host_data(section: dict, container: bool) -> None:
    policy = release_policy(measurements(sevSnp=section), tee="sev-snp", authority=AUTHORITY, container=container)
    assert claims(policy) == [
        {"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-uvm"},
        {"claim": "x-ms-sevsnpvm-hostdata", "equals": HOST_DATA},
        {"claim": "x-ms-sevsnpvm-is-debuggable", "equals": False},
        {"claim": "x-ms-sevsnpvm-vmpl", "equals": 0},
    ]


def test_container_without_host_data_is_refused() -> None:
    with pytest.raises(ValueError, match="sevSnp.hostData"):
        release_policy(measurements(sevSnp={"launchMeasurement": LAUNCH}), tee="sev-snp",
                       authority=AUTHORITY, container=True)


def test_tdx_reads_the_claims_at_their_documented_top_level_location() -> None:
    # MAA's TDX token is an EAT whose TDX claims (tdx_mrtd, tdx_td_attributes_debug) and Microsoft claims
    # (x-ms-attestation-type) are top level, with no x-ms-isolation-tee wrapper
    # (https://learn.microsoft.com/azure/attestation/trust-domain-extensions-eat-profile); the type and
    # compliance values are those of Microsoft's published CVM policy
    # (https://github.com/Azure/confidential-computing-cvm/blob/main/cvm_deployment/key/skr-policy.json).
    policy = release_policy(measurements(tdx={"mrtd": MRTD}), tee="tdx", authority=AUTHORITY)
    assert claims(policy) == [
        {"claim": "x-ms-attestation-type", "equals": "tdxvm"},
        {"claim": "x-ms-compliance-status", "equals": "azure-compliant-cvm"},
        {"claim": "tdx_mrtd", "equals": MRTD},
        {"claim": "tdx_td_attributes_debug", "equals": False},
    ]


def test_sgx_pins_enclave_signer_exact_product_and_svn_floor() -> None:
    # Claim sets (https://learn.microsoft.com/azure/attestation/claim-sets): the product id segments the
    # enclaves of one MRSIGNER and must match the author's value; only the SVN is a minimum.
    sgx = {"mrenclave": MRENCLAVE, "mrsigner": MRSIGNER, "productId": 7, "minSvn": 3}
    policy = release_policy(measurements(sgx=sgx), tee="sgx", authority=AUTHORITY)
    assert claims(policy) == [
        {"claim": "x-ms-sgx-mrenclave", "equals": MRENCLAVE},
        {"claim": "x-ms-sgx-mrsigner", "equals": MRSIGNER},
        {"claim": "x-ms-sgx-product-id", "equals": 7},
        {"claim": "x-ms-sgx-svn", "greaterOrEquals": 3},
        {"claim": "x-ms-sgx-is-debuggable", "equals": False},
    ]


@pytest.mark.parametrize(
    ("location", "shared"),
    [
        # Azure Attestation "Basic concepts", regional shared provider table.
        ("westeurope", "https://sharedweu.weu.attest.azure.net"),
        ("West Europe", "https://sharedweu.weu.attest.azure.net"),
        ("northeurope", "https://sharedneu.neu.attest.azure.net"),
        ("eastus2", "https://sharedeus2.eus2.attest.azure.net"),
        # Azure/confidential-computing-cvm cvm_deployment/key/skr-policy.json authorities.
        ("germanywestcentral", "https://shareddewc.dewc.attest.azure.net"),
    ],
)
def test_attest_hosts_use_microsofts_short_region_codes(location: str, shared: str) -> None:
    from components.attestation import maa_regions
    from policies.review.fakes import azure as fakes

    assert maa_regions.shared_endpoint(location) == shared
    code = shared.removeprefix("https://shared").split(".", 1)[0]
    provider = fakes.outputs("azure-native:attestation:AttestationProvider", "p", {"providerName": "ccpx", "location": location}, "id")
    assert provider["attestUri"] == f"https://ccpx.{code}.attest.azure.net"


def test_attest_host_of_an_undocumented_region_is_refused_not_invented() -> None:
    from components.attestation import maa_regions

    with pytest.raises(ValueError, match="no documented Microsoft Azure Attestation region code for location 'mars'"):
        maa_regions.attest_uri("ccpx", "mars")


def test_sgx_signer_only() -> None:
    policy = release_policy(measurements(sgx={"mrsigner": MRSIGNER}), tee="sgx", authority=AUTHORITY)
    names = [c["claim"] for c in claims(policy)]
    assert names == ["x-ms-sgx-mrsigner", "x-ms-sgx-product-id", "x-ms-sgx-svn", "x-ms-sgx-is-debuggable"]


@pytest.mark.parametrize(
    ("tee", "message"),
    [("sev-snp", "sevSnp.hostData"), ("tdx", "tdx section"), ("sgx", "sgx section")],
)
def test_missing_section_is_refused(tee: str, message: str) -> None:
    only_nitro = measurements(nitro={"pcr0": "ab" * 48})
    with pytest.raises(ValueError, match=message):
        release_policy(only_nitro, tee=tee, authority=AUTHORITY)


@pytest.mark.parametrize("tee", ["nitro", "confidential-space", "sevsnp"])
def test_tee_without_azure_release_is_refused(tee: str) -> None:
    with pytest.raises(ValueError, match="has no Azure secure key release"):
        release_policy(measurements(sevSnp={"launchMeasurement": LAUNCH}), tee=tee, authority=AUTHORITY)


@pytest.mark.parametrize("authority", ["", "http://x.attest.azure.net", "ccpdemo.weu.attest.azure.net"])
def test_authority_must_be_https(authority: str) -> None:
    with pytest.raises(ValueError, match="not an https URL"):
        release_policy(measurements(sevSnp={"launchMeasurement": LAUNCH}), tee="sev-snp", authority=authority)


def test_no_policy_uses_runtime_claims_or_type_alone() -> None:
    all_sections = measurements(
        sevSnp={"launchMeasurement": LAUNCH, "hostData": HOST_DATA}, tdx={"mrtd": MRTD}, sgx={"mrenclave": MRENCLAVE}
    )
    for tee, container in [("sev-snp", False), ("sev-snp", True), ("tdx", False), ("sgx", False)]:
        allof = claims(release_policy(all_sections, tee=tee, authority=AUTHORITY, container=container))
        assert not any("x-ms-runtime" in c["claim"] for c in allof)
        pins = [c for c in allof if c.get("equals") in (LAUNCH, HOST_DATA, MRTD, MRENCLAVE)]
        assert len(pins) == 1, (tee, container)
        assert any(c["claim"].endswith(("debuggable", "attributes_debug")) and c["equals"] is False for c in allof)


def test_encode_is_base64url_compact_json_and_roundtrips() -> None:
    policy = release_policy(measurements(sevSnp={"hostData": HOST_DATA}), tee="sev-snp", authority=AUTHORITY)
    data = encode_release_policy(policy)
    assert set(data) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_release_policy(data) == policy
    import base64

    raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
    assert raw.startswith('{"version":"1.0.0","anyOf":[{"authority":')
    assert " " not in raw
    assert CONTENT_TYPE == "application/json; charset=utf-8"


def test_decode_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="base64url"):
        decode_release_policy("!!!not-base64")
    with pytest.raises(ValueError, match="JSON object"):
        decode_release_policy(encode_release_policy([1, 2]))  # type: ignore[arg-type]


def test_combine_keeps_each_alternative_complete() -> None:
    m = measurements(sevSnp={"hostData": HOST_DATA}, sgx={"mrenclave": MRENCLAVE})
    snp = release_policy(m, tee="sev-snp", authority=AUTHORITY)
    sgx = release_policy(m, tee="sgx", authority=AUTHORITY)
    combined = combine_release_policies([snp, sgx, snp])
    assert combined == {"version": "1.0.0", "anyOf": [snp["anyOf"][0], sgx["anyOf"][0]]}
    with pytest.raises(ValueError, match="never exportable"):
        combine_release_policies([])


@pytest.mark.parametrize(
    ("size", "tee"),
    [
        ("Standard_DC4as_v5", "sev-snp"), ("Standard_EC16as_v5", "sev-snp"), ("Standard_DC8ads_v5", "sev-snp"),
        ("Standard_EC4ads_v5", "sev-snp"), ("Standard_DC4es_v5", "tdx"), ("Standard_EC8es_v5", "tdx"),
        ("Standard_DC2s_v2", "sgx"), ("Standard_DC4s_v3", "sgx"), ("Standard_DC8ds_v3", "sgx"),
    ],
)
def test_accepted_sizes(size: str, tee: str) -> None:
    validate_cvm_size(size, tee)


@pytest.mark.parametrize(
    ("size", "tee", "families"),
    [
        ("Standard_D4s_v5", "sev-snp", "DCasv5, ECasv5, DCadsv5, ECadsv5"),
        ("Standard_DC4es_v5", "sev-snp", "DCasv5, ECasv5, DCadsv5, ECadsv5"),
        ("Standard_DC4as_v5", "tdx", "DCesv5, DCedsv5, ECesv5, ECedsv5"),
        ("Standard_DC4as_v5", "sgx", "DCsv2, DCsv3, DCdsv3"),
        ("m6i.xlarge", "sev-snp", "DCasv5"),
    ],
)
def test_wrong_size_names_size_and_families(size: str, tee: str, families: str) -> None:
    with pytest.raises(ValueError) as error:
        validate_cvm_size(size, tee)
    assert f"VM size '{size}' does not provide {tee}" in str(error.value)
    assert families in str(error.value)


def test_unknown_tee_for_sizes() -> None:
    with pytest.raises(ValueError, match="has no Azure VM sizes"):
        validate_cvm_size("Standard_DC4as_v5", "nitro")
