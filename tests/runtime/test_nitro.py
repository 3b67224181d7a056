"""AWS Nitro Enclaves verifier: genuine documents, their derived tampered copies, and the simulated NSM."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from enclave_runtime.attest import Collateral, TrustStore, VerificationError, verify
from enclave_runtime.attest.collateral import decode_evidence
from enclave_runtime.attest.nitro import NitroClaims
from enclave_runtime.simulate.ca import ec_key, issue
from enclave_runtime.simulate.nitro import SimulatedNitro, sign
from tests.runtime.vectors import manifest, path, read, when

KIND = "aws-nitro"
BETA = "aws-nitro/nitro_evervault_beta_20221013.cbor"
DEBUG_GA = "aws-nitro/nitro_evervault_ga_debugmode_20230918.b64"
BETA_AT = when("2022-10-13T08:58:02.136+00:00")
CLAIMS = ("module_id", "timestamp", "timestamp_ms", "digest", "nonce", "user_data", "public_key")
PCRS = ("pcr0", "pcr1", "pcr2", "pcr8")
SIM_AT = dt.datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc)
ZERO = bytes(48)


def entry(file: str, expect: str = "valid") -> dict[str, Any]:
    return next(e for e in manifest() if e["file"] == file and e["expect"] == expect and e["kind"] == KIND)


def collateral(e: dict[str, Any]) -> Collateral:
    return Collateral.from_files([path(name) for name in e.get("with", [])])


def rejected(evidence: bytes, at: dt.datetime, **kwargs: Any) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        verify(KIND, evidence, at=at, **kwargs)
    return caught.value


def cose(document: bytes) -> list[Any]:
    return cbor2.loads(decode_evidence(document))


def fields(document: bytes) -> dict[str, Any]:
    return cbor2.loads(cose(document)[2])


def with_payload(document: bytes, payload: dict[str, Any]) -> bytes:
    """The document with its payload replaced and its original signature kept (so no longer valid)."""
    protected, unprotected, _, signature = cose(document)
    return cbor2.dumps([protected, unprotected, cbor2.dumps(payload), signature])


@pytest.fixture(scope="module")
def sim() -> SimulatedNitro:
    return SimulatedNitro()


@pytest.fixture(scope="module")
def sim_store(sim: SimulatedNitro) -> TrustStore:
    return TrustStore(simulation_roots=[sim.root])


@pytest.fixture(scope="module")
def sim_doc(sim: SimulatedNitro) -> bytes:
    return sim.attest(at=SIM_AT, nonce=b"\x01" * 32, user_data=b"hello", public_key=b"\x30" * 91)


def resigned(sim: SimulatedNitro, document: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """`document`'s payload changed by `change`, then validly signed by a fresh leaf of `sim`."""
    payload = fields(document)
    leaf = sim.leaf(SIM_AT)
    payload["certificate"] = leaf.der()
    change(payload)
    return sign(payload, leaf.key)  # type: ignore[arg-type]


# --- genuine documents ----------------------------------------------------------------------------


@pytest.mark.parametrize("file", [BETA, DEBUG_GA])
def test_genuine_document_verifies_with_the_manifest_claims(file: str) -> None:
    e = entry(file)
    claims = verify(KIND, read(file), collateral=collateral(e), at=when(e["verify_at"]))
    data = claims.as_dict()
    assert isinstance(claims, NitroClaims)
    assert {k: data[k] for k in CLAIMS + PCRS} == {k: e["fields"][k] for k in CLAIMS + PCRS}
    assert data["debug"] is e["fields"]["debug_mode_pcr0_2_zero"]
    assert (data["anchor"], data["simulated"]) == ("aws-nitro-root-g1", False)
    assert set(data) == {*CLAIMS, "anchor", "debug", "simulated", *(f"pcr{i}" for i in range(16))}


def test_genuine_document_needs_no_collateral_because_the_root_is_pinned() -> None:
    claims = verify(KIND, read(BETA), at=BETA_AT)
    assert claims.anchor == "aws-nitro-root-g1"
    assert claims.as_dict()["pcr0"] == entry(BETA)["fields"]["pcr0"]


def test_tagged_cose_sign1_is_accepted() -> None:
    tagged = cbor2.dumps(cbor2.CBORTag(18, cose(read(BETA))))
    assert verify(KIND, tagged, at=BETA_AT).as_dict()["module_id"] == entry(BETA)["fields"]["module_id"]


def test_genuine_document_after_its_leaf_expired_fails_validity() -> None:
    e = entry(BETA, "invalid")
    error = rejected(read(BETA), when(e["verify_at"]), collateral=collateral(e))
    assert error.check == "validity"
    assert "2022-10-13T11:58:02+00:00" in error.message


@pytest.mark.parametrize(
    ("file", "check"),
    [
        ("aws-nitro/derived_nitro_sig_lastbyte_flipped.cbor", "signature"),
        ("aws-nitro/derived_nitro_pcr0_byte_flipped.cbor", "signature"),
        ("aws-nitro/derived_nitro_truncated.cbor", "structure"),
    ],
)
def test_derived_samples_fail_with_the_right_check(file: str, check: str) -> None:
    e = entry(file, "invalid")
    assert rejected(read(file), when(e["verify_at"]), collateral=collateral(e)).check == check


def test_cabundle_with_a_foreign_root_fails_even_when_the_pinned_root_is_supplied(
    sim: SimulatedNitro,
) -> None:
    payload = fields(read(BETA))
    payload["cabundle"][0] = sim.authorities[0].der()
    forged = with_payload(read(BETA), payload)
    error = rejected(forged, BETA_AT, collateral=collateral(entry(BETA)))
    assert error.check == "root"
    assert "cabundle[0]" in error.message
    assert rejected(forged, BETA_AT).check == "chain"  # without the pinned root, nothing names the issuer


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        (lambda b, p: b.replace(p["nonce"], bytes([p["nonce"][0] ^ 0x01]) + p["nonce"][1:]), "signature"),
        (lambda b, p: b[:-50] + bytes([b[-50] ^ 0x80]) + b[-49:], "signature"),
        (lambda b, p: b.replace(p["module_id"].encode(), p["module_id"].upper().encode(), 1), "signature"),
        (
            lambda b, p: b.replace(
                p["certificate"][-20:], bytes([p["certificate"][-20] ^ 1]) + p["certificate"][-19:]
            ),
            "chain",
        ),
        (lambda b, p: b[:4000], "structure"),
        (lambda b, p: b[:10], "structure"),
        (lambda b, p: b"", "structure"),
        (lambda b, p: b + b"\x00", "structure"),
        (lambda b, p: b"\x85" + b[1:] + b"\xf6", "structure"),  # five-element array
    ],
    ids=[
        "nonce-bit",
        "signature-bit",
        "module-id",
        "leaf-signature",
        "cut-4000",
        "cut-10",
        "empty",
        "trailing",
        "5-array",
    ],
)
def test_hand_made_mutations_of_the_genuine_document_are_rejected(
    mutate: Callable[[bytes, dict[str, Any]], bytes], check: str
) -> None:
    genuine = decode_evidence(read(BETA))
    mutated = mutate(genuine, fields(genuine))
    assert mutated != genuine
    assert rejected(mutated, BETA_AT).check == check


@pytest.mark.parametrize(
    "protected",
    [
        cbor2.dumps({1: -7}),
        cbor2.dumps({1: -36}),
        cbor2.dumps({1: "ES384"}),
        cbor2.dumps({1: -35, 4: b"k"}),
        b"",
    ],
    ids=["ES256", "ES512", "text-alg", "extra-header", "empty"],
)
def test_only_the_es384_protected_header_is_accepted(protected: bytes) -> None:
    _, unprotected, payload, signature = cose(read(BETA))
    error = rejected(cbor2.dumps([protected, unprotected, payload, signature]), BETA_AT)
    assert error.check == "structure"
    assert "-35" in error.message


def test_unprotected_header_and_signature_length_are_checked() -> None:
    protected, _, payload, signature = cose(read(BETA))
    assert rejected(cbor2.dumps([protected, {1: -35}, payload, signature]), BETA_AT).check == "structure"
    short = rejected(cbor2.dumps([protected, {}, payload, signature[:64]]), BETA_AT)
    assert (short.check, "64 bytes" in short.message) == ("structure", True)
    assert rejected(cbor2.dumps(cbor2.CBORTag(98, cose(read(BETA)))), BETA_AT).check == "structure"


# --- simulated NSM --------------------------------------------------------------------------------


def test_simulated_document_has_the_aws_layout(sim_doc: bytes) -> None:
    protected, unprotected, payload, signature = cose(sim_doc)
    assert sim_doc[:1] == b"\x84"  # untagged array
    assert (protected, unprotected, len(signature)) == (bytes.fromhex("a1013822"), {}, 96)
    assert list(cbor2.loads(payload)) == list(fields(read(BETA)))
    assert sorted(cbor2.loads(payload)["pcrs"]) == list(range(16))


def test_simulated_document_verifies_only_with_the_simulation_root(
    sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes
) -> None:
    claims = verify(KIND, sim_doc, store=sim_store, at=SIM_AT)
    data = claims.as_dict()
    assert (data["anchor"], data["simulated"], data["debug"]) == ("simulation", True, False)
    assert (data["nonce"], data["user_data"], data["public_key"]) == ("01" * 32, b"hello".hex(), "30" * 91)
    assert (data["timestamp"], data["timestamp_ms"]) == ("2025-03-04T05:06:07.890000+00:00", 1741064767890)
    assert (data["digest"], data["module_id"]) == ("SHA384", "i-0000000000000000-enc0000000000000000")
    assert data["pcr3"] == ZERO.hex() and data["pcr0"] != ZERO.hex()
    error = rejected(sim_doc, SIM_AT)
    assert error.check == "root"
    assert "not a pinned aws-nitro root" in error.message
    assert (
        rejected(sim_doc, SIM_AT, store=TrustStore(simulation_roots=[SimulatedNitro().root])).check == "root"
    )


def test_simulated_document_expires_with_its_leaf(sim_store: TrustStore, sim_doc: bytes) -> None:
    assert rejected(sim_doc, SIM_AT + dt.timedelta(hours=3, seconds=1), store=sim_store).check == "validity"
    assert rejected(sim_doc, SIM_AT - dt.timedelta(minutes=2), store=sim_store).check == "validity"


def test_simulated_pcrs_and_debug(sim: SimulatedNitro, sim_store: TrustStore) -> None:
    pcr0 = bytes(range(48))
    chosen = verify(KIND, sim.attest(pcrs={0: pcr0, 9: b"\x09" * 48}, at=SIM_AT), store=sim_store, at=SIM_AT)
    assert (chosen.as_dict()["pcr0"], chosen.as_dict()["pcr9"], chosen.debug) == (
        pcr0.hex(),
        "09" * 48,
        False,
    )
    debug = verify(KIND, sim.attest(debug=True, pcrs={0: pcr0}, at=SIM_AT), store=sim_store, at=SIM_AT)
    assert debug.debug is True
    assert all(debug.as_dict()[f"pcr{i}"] == ZERO.hex() for i in range(16))
    zeroed = sim.attest(pcrs={0: ZERO, 1: ZERO, 2: ZERO, 4: b"\x04" * 48}, at=SIM_AT)
    assert verify(KIND, zeroed, store=sim_store, at=SIM_AT).debug is True


def test_optional_fields_at_their_documented_maximum_sizes_verify(
    sim: SimulatedNitro, sim_store: TrustStore
) -> None:
    document = sim.attest(user_data=b"u" * 512, nonce=b"n" * 512, public_key=b"k" * 1024, at=SIM_AT)
    claims = verify(KIND, document, store=sim_store, at=SIM_AT)
    assert (claims.user_data, claims.nonce, claims.public_key) == (b"u" * 512, b"n" * 512, b"k" * 1024)
    empty = verify(KIND, sim.attest(user_data=b"", nonce=b"", at=SIM_AT), store=sim_store, at=SIM_AT)
    assert (empty.user_data, empty.nonce, empty.public_key) == (b"", b"", None)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload.__setitem__(key, value)


def _pcr(index: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda payload: payload["pcrs"].__setitem__(index, value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_pcr(0, b"\x01" * 47), "PCR0"),
        (_pcr(3, b"\x01" * 32), "PCR3"),
        (_pcr(5, "00" * 48), "PCR5"),
        (_pcr("1", b"\x01" * 48), "'1'"),
        (_pcr(32, b"\x01" * 48), "32"),
        (lambda p: p["pcrs"].pop(2), "PCR2"),
        (_set("pcrs", {}), "pcrs"),
        (_set("pcrs", [ZERO] * 16), "pcrs"),
        (_set("timestamp", "1741064767890"), "timestamp"),
        (_set("timestamp", 0), "timestamp"),
        (_set("timestamp", -5), "timestamp"),
        (_set("timestamp", 2**64), "timestamp"),
        (_set("timestamp", True), "timestamp"),
        (_set("module_id", ""), "module_id"),
        (_set("module_id", b"i-0"), "module_id"),
        (_set("digest", "SHA256"), "digest"),
        (_set("digest", b"SHA384"), "digest"),
        (_set("cabundle", []), "cabundle"),
        (_set("cabundle", "root"), "cabundle"),
        (lambda p: p["cabundle"].append(b""), "cabundle[4]"),
        (_set("certificate", None), "certificate"),
        (lambda p: p.pop("certificate"), "certificate"),
        (_set("certificate", b"c" * 1025), "certificate"),
        (_set("nonce", b"n" * 513), "nonce"),
        (_set("nonce", "abc"), "nonce"),
        (_set("user_data", b"u" * 513), "user_data"),
        (_set("user_data", 5), "user_data"),
        (_set("public_key", b""), "public_key"),
        (_set("public_key", b"k" * 1025), "public_key"),
        (_set("extra", b""), "extra"),
        (_set(7, b""), "7"),
    ],
)
def test_payload_types_and_sizes_are_checked_strictly(
    sim: SimulatedNitro,
    sim_store: TrustStore,
    sim_doc: bytes,
    change: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    error = rejected(resigned(sim, sim_doc, change), SIM_AT, store=sim_store)
    assert error.check == "structure"
    assert field in error.message


def test_payload_that_is_not_a_map_is_structure(sim: SimulatedNitro, sim_store: TrustStore) -> None:
    leaf = sim.leaf(SIM_AT)
    not_a_map = sign([1, 2], leaf.key)  # type: ignore[arg-type]
    assert rejected(not_a_map, SIM_AT, store=sim_store).check == "structure"


def test_properly_signed_document_under_a_self_made_root_in_the_bundle_is_refused(
    sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes
) -> None:
    other = SimulatedNitro()  # same names as `sim`, different keys
    forged = resigned(sim, sim_doc, lambda p: p["cabundle"].__setitem__(0, other.authorities[0].der()))
    assert rejected(forged, SIM_AT, store=sim_store).check == "root"
    assert rejected(forged, SIM_AT, store=TrustStore(simulation_roots=[other.root])).check == "chain"
    assert rejected(forged, SIM_AT).check == "chain"


def test_cabundle_out_of_order_is_refused(sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes) -> None:
    swapped = resigned(sim, sim_doc, lambda p: p["cabundle"].__setitem__(slice(1, 3), p["cabundle"][2:0:-1]))
    assert rejected(swapped, SIM_AT, store=sim_store).check == "chain"
    short = resigned(sim, sim_doc, lambda p: p["cabundle"].pop(1))
    assert rejected(short, SIM_AT, store=sim_store).check == "chain"


def test_signing_certificate_must_hold_a_p384_key(
    sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes
) -> None:
    p256 = issue(
        "p256", ec_key(ec.SECP256R1()), sim.authorities[-1], ca=False,
        not_before=SIM_AT - dt.timedelta(minutes=1), not_after=SIM_AT + dt.timedelta(hours=3),
    )  # fmt: skip
    forged = resigned(sim, sim_doc, _set("certificate", p256.der()))
    error = rejected(forged, SIM_AT, store=sim_store)
    assert (error.check, "P-384" in error.message) == ("chain", True)


def test_timestamp_outside_the_leaf_validity_is_a_binding_failure(
    sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes
) -> None:
    late = resigned(sim, sim_doc, _set("timestamp", fields(sim_doc)["timestamp"] + 4 * 3600 * 1000))
    assert rejected(late, SIM_AT, store=sim_store).check == "binding"


def test_signature_by_another_key_fails_signature(
    sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes
) -> None:
    payload = fields(sim_doc)
    payload["certificate"] = sim.leaf(SIM_AT).der()
    forged = sign(payload, ec_key(ec.SECP384R1()))
    assert rejected(forged, SIM_AT, store=sim_store).check == "signature"


def test_leaf_revoked_by_a_supplied_crl(sim: SimulatedNitro, sim_store: TrustStore, sim_doc: bytes) -> None:
    issuer = sim.authorities[-1]
    leaf = x509.load_der_x509_certificate(fields(sim_doc)["certificate"])
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(SIM_AT - dt.timedelta(days=1))
        .next_update(SIM_AT + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(leaf.serial_number).revocation_date(SIM_AT).build()
        )
        .sign(issuer.key, hashes.SHA384())  # type: ignore[arg-type]
    )
    assert rejected(sim_doc, SIM_AT, store=sim_store, collateral=Collateral(crls=[crl])).check == "revocation"
