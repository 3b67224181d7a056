"""The Azure confidential size table (components/azure/sizes.py), checked against Microsoft's DCasv5/ECasv5
(SEV-SNP) and DCesv5/ECesv5 (TDX) series documentation cited next to it: every documented family is
accepted for its TEE only, and every look-alike family is refused with its reason."""

from __future__ import annotations

import pytest

from components.azure.sizes import CVM_FAMILIES, EXCLUDED_FAMILIES, size_family, validate_cvm_size

DOCUMENTED = {
    "sev-snp": ["Standard_DC4as_v5", "Standard_DC96ads_v5", "Standard_EC20as_v5", "Standard_EC4ads_v5"],
    "tdx": ["Standard_DC4es_v5", "Standard_DC8eds_v5", "Standard_EC128es_v5", "Standard_EC4eds_v5"],
    "sgx": ["Standard_DC2s_v2", "Standard_DC8_v2", "Standard_DC4s_v3", "Standard_DC48ds_v3"],
}


@pytest.mark.parametrize(("tee", "size"), [(t, s) for t, sizes in DOCUMENTED.items() for s in sizes])
def test_documented_sizes_provide_their_tee_only(tee: str, size: str) -> None:
    validate_cvm_size(size, tee)
    for other in CVM_FAMILIES:
        if other != tee:
            assert size_family(size, other) is None
            with pytest.raises(ValueError, match=f"does not provide {other}"):
                validate_cvm_size(size, other)


def test_tdx_local_disk_families_are_listed() -> None:
    assert list(CVM_FAMILIES["tdx"]) == ["DCesv5", "DCedsv5", "ECesv5", "ECedsv5"]


@pytest.mark.parametrize(
    ("size", "tee", "family", "reason"),
    [
        ("Standard_DC4as_cc_v5", "sev-snp", "DCas_cc_v5/ECas_cc_v5", "confidential-containers host size"),
        ("Standard_EC4ads_cc_v5", "sev-snp", "DCas_cc_v5/ECas_cc_v5", "confidential-containers host size"),
        ("Standard_D4as_v5", "sev-snp", "Dasv5/Dadsv5/Easv5/Eadsv5", "AMD size without SEV-SNP"),
        ("Standard_E8ads_v5", "sev-snp", "Dasv5/Dadsv5/Easv5/Eadsv5", "AMD size without SEV-SNP"),
        ("Standard_D4s_v5", "tdx", "Dsv5/Ddsv5/Esv5/Edsv5", "Intel size without TDX"),
        ("Standard_E4ds_v5", "tdx", "Dsv5/Ddsv5/Esv5/Edsv5", "Intel size without TDX"),
    ],
)
def test_each_excluded_family_is_refused_with_its_reason(size: str, tee: str, family: str, reason: str) -> None:
    assert family in EXCLUDED_FAMILIES
    for each in CVM_FAMILIES:
        assert size_family(size, each) is None
    with pytest.raises(ValueError) as error:
        validate_cvm_size(size, tee)
    assert reason in str(error.value) and f"({family})" in str(error.value)


def test_every_excluded_family_has_a_test() -> None:
    tested = {"DCas_cc_v5/ECas_cc_v5", "Dasv5/Dadsv5/Easv5/Eadsv5", "Dsv5/Ddsv5/Esv5/Edsv5"}
    assert set(EXCLUDED_FAMILIES) == tested


@pytest.mark.parametrize("size", ["Standard_DC8s_v2", "Standard_DC16s_v2", "Standard_DC1_v2"])
def test_sgx_v2_sizes_not_in_the_vm_size_list_are_refused(size: str) -> None:
    # "Solutions on Azure for Intel SGX" lists DC1s_v2, DC2s_v2, DC4s_v2 and DC8_v2 only.
    with pytest.raises(ValueError, match="does not provide sgx"):
        validate_cvm_size(size, "sgx")


@pytest.mark.parametrize(("size", "tee"), [("Standard_DC4as_v6", "sev-snp"), ("Standard_DC4es_v6", "tdx")])
def test_families_the_cited_table_does_not_list_are_refused(size: str, tee: str) -> None:
    with pytest.raises(ValueError, match=f"does not provide {tee}"):
        validate_cvm_size(size, tee)
