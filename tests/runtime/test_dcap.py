"""Intel DCAP (TDX v4/v5, SGX v3): genuine quotes verify with the manifest's exact claims; derived ones fail
with the named check; CRLs and signed TCB collateral are applied (the latter under a simulated Intel PKI,
since the genuine TCB Info comes without its signing chain)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.attest.dcap.quote import Quote, TdReport
from enclave_runtime.simulate.dcap import SimulatedDcap, TcbLevel
from tests.runtime.vectors import at, manifest, read, when

DCAP = ("intel-tdx", "intel-sgx")
TDX_FIELDS = ("mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrseam", "td_attributes", "report_data", "fmspc")
SGX_FIELDS = ("mrenclave", "mrsigner", "attributes", "report_data", "fmspc")
DERIVED_CHECK = {
    "intel-tdx/derived_tdx_quote_sig_byte_flipped.dat": "signature",
    "intel-tdx/derived_tdx_mrtd_byte_flipped.dat": "signature",
    "intel-tdx/derived_tdx_td_attributes_debug_set.dat": "signature",
    "intel-tdx/derived_tdx_truncated.dat": "structure",
    "intel-sgx/derived_sgx_quote_sig_byte_flipped.dat": "signature",
    "intel-sgx/derived_sgx_mrenclave_byte_flipped.dat": "signature",
    "intel-sgx/derived_sgx_attributes_debug_cleared.dat": "signature",
    "intel-sgx/derived_sgx_truncated.dat": "structure",
}
SPR_QUOTE = "intel-tdx/tdx_gtg_v4_spr_e4_quote.dat"
INSIDE_CRLS = when("2023-06-20T00:00:00+00:00")  # PCK CRL 2023-06-08 .. 2023-07-08, root CRL .. 2024-04-02


def _entries(expect: str) -> list[dict[str, Any]]:
    return [e for e in manifest() if e["kind"] in DCAP and e["expect"] == expect and e["verify_at"]]


def _collateral(*blobs: bytes) -> Collateral:
    collateral = Collateral()
    for blob in blobs:
        collateral.add(blob)
    return collateral


def _fails(check: str, kind: str, evidence: bytes, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(kind, evidence, **kwargs)
    assert caught.value.check == check, caught.value
    return caught.value


@pytest.mark.parametrize("entry", _entries("valid"), ids=lambda e: e["file"])
def test_genuine_quote_verifies_with_the_manifest_claims(entry: dict[str, Any]) -> None:
    claims = verify(entry["kind"], read(entry["file"]), at=at(entry)).as_dict()
    fields = entry["fields"]
    tdx = entry["kind"] == "intel-tdx"
    for name in TDX_FIELDS if tdx else SGX_FIELDS:
        assert claims[name] == fields[name], name
    assert claims["version"] == fields["version"]
    assert claims["debug"] is fields["td_debug" if tdx else "sgx_debug"]
    assert claims["anchor"] == "intel-sgx-root-ca" and claims["simulated"] is False
    assert claims["tcb_status"] is None and claims["qe_tcb_status"] is None
    if not tdx:
        assert (claims["isvprodid"], claims["isvsvn"]) == (fields["isvprodid"], fields["isvsvn"])
    assert Quote.parse(read(entry["file"])).size == fields["total_used"]  # padding after the quote ignored


@pytest.mark.parametrize("entry", _entries("invalid"), ids=lambda e: e["file"])
def test_derived_quote_fails_with_the_named_check(entry: dict[str, Any]) -> None:
    _fails(DERIVED_CHECK[entry["file"]], entry["kind"], read(entry["file"]), at=at(entry))


def test_chain_expired_after_the_pck_leaf_window() -> None:
    _fails("validity", "intel-tdx", read(SPR_QUOTE), at=when("2029-09-21T00:00:00+00:00"))


def test_quote_of_the_other_kind_names_the_right_kind() -> None:
    error = _fails("structure", "intel-sgx", read(SPR_QUOTE), at=when("2023-01-01T00:00:00+00:00"))
    assert "intel-tdx" in error.message
    error = _fails("structure", "intel-tdx", read("intel-sgx/sgx_trustee_occlum_v3_debug_quote.dat"))
    assert "intel-sgx" in error.message


def test_genuine_crls_are_applied() -> None:
    crls = _collateral(
        read("intel-tdx/tdx_gtg_collateral_pckcrl"), read("intel-tdx/tdx_gtg_collateral_rootcrl.der")
    )
    assert len(crls.crls) == 2
    assert (
        verify("intel-tdx", read(SPR_QUOTE), collateral=crls, at=INSIDE_CRLS)
        .mrtd.hex()
        .startswith("6363b804")
    )
    error = _fails(
        "validity", "intel-tdx", read(SPR_QUOTE), collateral=crls, at=when("2023-07-09T00:00:00+00:00")
    )
    assert "Intel SGX PCK Platform CA" in error.message


def test_genuine_tcb_info_without_its_signing_chain_fails_closed() -> None:
    tcb_info = _collateral(read("intel-tdx/tdx_gtg_collateral_tcbinfo_v4_fmspc50806f000000.json"))
    error = _fails("chain", "intel-tdx", read(SPR_QUOTE), collateral=tcb_info, at=INSIDE_CRLS)
    assert "TCB signing chain" in error.message


NOW = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
TEE_TCB = (3, 0, 5) + (0,) * 13


@pytest.fixture(scope="module")
def sim() -> SimulatedDcap:
    return SimulatedDcap(NOW)


@pytest.fixture(scope="module")
def store(sim: SimulatedDcap) -> TrustStore:
    return TrustStore(simulation_roots=[sim.root])


def _above(values: tuple[int, ...]) -> tuple[int, ...]:
    return (values[0] + 1, *values[1:])


def _tdx_collateral(sim: SimulatedDcap, *levels: TcbLevel) -> Collateral:
    return _collateral(
        sim.pem(sim.signing_chain()),
        sim.tcb_info("TDX", levels),
        sim.qe_identity(
            "TD_QE", [(sim.qe_isvsvn + 1, "UpToDate"), (sim.qe_isvsvn, "OutOfDate")], isvprodid=2
        ),
    )


def test_simulated_tdx_up_to_date(sim: SimulatedDcap, store: TrustStore) -> None:
    collateral = _tdx_collateral(sim, TcbLevel("UpToDate", sim.components, sim.pcesvn, TEE_TCB))
    claims = verify("intel-tdx", sim.tdx_quote(), collateral=collateral, store=store, at=NOW)
    assert (claims.tcb_status, claims.qe_tcb_status, claims.anchor) == ("UpToDate", "OutOfDate", "simulation")
    assert claims.fmspc == sim.fmspc


@pytest.mark.parametrize(
    "first",
    [
        TcbLevel("UpToDate", _above(SimulatedDcap.components), 11, TEE_TCB),  # newer SGX component
        TcbLevel("UpToDate", SimulatedDcap.components, 12, TEE_TCB),  # newer PCESVN
        TcbLevel("UpToDate", SimulatedDcap.components, 11, _above(TEE_TCB)),  # newer TDX module
    ],
)
def test_simulated_tdx_out_of_date(sim: SimulatedDcap, store: TrustStore, first: TcbLevel) -> None:
    collateral = _tdx_collateral(sim, first, TcbLevel("OutOfDate", sim.components, sim.pcesvn, TEE_TCB))
    assert (
        verify("intel-tdx", sim.tdx_quote(), collateral=collateral, store=store, at=NOW).tcb_status
        == "OutOfDate"
    )


def test_simulated_revoked_or_unknown_level_is_a_tcb_failure(sim: SimulatedDcap, store: TrustStore) -> None:
    newer = TcbLevel("UpToDate", _above(sim.components), sim.pcesvn, TEE_TCB)
    revoked = _tdx_collateral(sim, newer, TcbLevel("Revoked", sim.components, sim.pcesvn, TEE_TCB))
    assert (
        "Revoked"
        in _fails("tcb", "intel-tdx", sim.tdx_quote(), collateral=revoked, store=store, at=NOW).message
    )
    _fails("tcb", "intel-tdx", sim.tdx_quote(), collateral=_tdx_collateral(sim, newer), store=store, at=NOW)


def test_simulated_sgx_collateral(sim: SimulatedDcap, store: TrustStore) -> None:
    collateral = _collateral(
        sim.pem(sim.signing_chain()),
        sim.tcb_info("SGX", [TcbLevel("SWHardeningNeeded", sim.components, sim.pcesvn)]),
        sim.qe_identity("QE", [(sim.qe_isvsvn, "UpToDate")], isvprodid=1),
    )
    claims = verify("intel-sgx", sim.sgx_quote(), collateral=collateral, store=store, at=NOW)
    assert (claims.tcb_status, claims.qe_tcb_status, claims.debug) == ("SWHardeningNeeded", "UpToDate", False)
    wrong_qe = _collateral(
        sim.pem(sim.signing_chain()), sim.qe_identity("QE", [(0, "UpToDate")], isvprodid=2)
    )
    assert (
        "isvprodid"
        in _fails("binding", "intel-sgx", sim.sgx_quote(), collateral=wrong_qe, store=store, at=NOW).message
    )


def test_tampered_or_stale_tcb_info_is_refused(sim: SimulatedDcap, store: TrustStore) -> None:
    level = TcbLevel("UpToDate", sim.components, sim.pcesvn, TEE_TCB)
    signed = sim.tcb_info("TDX", [level])
    tampered = signed.replace(b'"UpToDate"', b'"UpToDatf"')
    chain = sim.pem(sim.signing_chain())
    _fails(
        "signature",
        "intel-tdx",
        sim.tdx_quote(),
        collateral=_collateral(chain, tampered),
        store=store,
        at=NOW,
    )
    later = NOW + dt.timedelta(days=40)  # tcbInfo nextUpdate is 29 days after NOW; certificates still valid
    _fails(
        "validity", "intel-tdx", sim.tdx_quote(), collateral=_collateral(chain, signed), store=store, at=later
    )
    other = SimulatedDcap(NOW, fmspc=bytes.fromhex("112233445566"))
    mismatched = _collateral(chain, other.tcb_info("TDX", [level]))
    _fails("signature", "intel-tdx", sim.tdx_quote(), collateral=mismatched, store=store, at=NOW)


def test_tcb_info_for_another_fmspc_is_a_binding_failure(store: TrustStore, sim: SimulatedDcap) -> None:
    other = SimulatedDcap(NOW, fmspc=bytes.fromhex("112233445566"))
    other.tcb_signer = sim.tcb_signer  # same signer, so only the FMSPC differs
    collateral = _collateral(
        sim.pem(sim.signing_chain()), other.tcb_info("TDX", [TcbLevel("UpToDate", sim.components, 11)])
    )
    assert (
        "fmspc"
        in _fails("binding", "intel-tdx", sim.tdx_quote(), collateral=collateral, store=store, at=NOW).message
    )


def test_simulated_crl_listing_the_pck_leaf_is_revocation(sim: SimulatedDcap, store: TrustStore) -> None:
    collateral = Collateral(crls=[sim.crl([sim.pck_leaf.certificate])])
    _fails("revocation", "intel-tdx", sim.tdx_quote(), collateral=collateral, store=store, at=NOW)
    clean = Collateral(crls=[sim.crl([])])
    assert verify("intel-tdx", sim.tdx_quote(), collateral=clean, store=store, at=NOW).anchor == "simulation"


def test_simulated_quote_needs_the_explicit_simulation_root(sim: SimulatedDcap) -> None:
    _fails("root", "intel-tdx", sim.tdx_quote(), at=NOW)


def test_v5_quote_with_a_tdx15_body_parses_and_verifies(sim: SimulatedDcap, store: TrustStore) -> None:
    evidence = sim.tdx_quote(version=5, tdx15=True, td_attributes=bytes([1]) + bytes(7))
    assert evidence[48:54] == (3).to_bytes(2, "little") + (648).to_bytes(4, "little")
    body = Quote.parse(evidence).body
    assert isinstance(body, TdReport) and body.mrservicetd == b"\x05" * 48 and body.tee_tcb_svn2 is not None
    claims = verify("intel-tdx", evidence, store=store, at=NOW)
    assert (claims.version, claims.debug, claims.mrtd) == (5, True, b"\x11" * 48)


def test_v5_body_size_must_match_its_type(sim: SimulatedDcap, store: TrustStore) -> None:
    evidence = bytearray(sim.tdx_quote(version=5))
    evidence[50:54] = (648).to_bytes(4, "little")  # type 2 claims the TDX 1.5 size
    assert "size 648" in _fails("structure", "intel-tdx", bytes(evidence), store=store, at=NOW).message
