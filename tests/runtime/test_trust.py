"""The chain verifier's caches must never carry trust from one call to the next: validity, the anchor
and the signature of every new certificate are judged on every call, and a root is trusted by its pin
or an explicit simulation root only."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from enclave_runtime.attest import Collateral, TrustStore, VerificationError
from enclave_runtime.attest.trust import CHAINS, load_der_cached, readable
from enclave_runtime.simulate.ca import ec_key, issue
from enclave_runtime.simulate.snp import SimulatedSnp
from tests.runtime.vectors import path



def _milan() -> tuple[x509.Certificate, list[x509.Certificate]]:
    vcek = Collateral.from_files([path("amd-sev-snp/snp_trustee_milan_vcek.der")]).certificates[0]
    return vcek, Collateral.from_files([path("amd-sev-snp/ask_ark_milan.pem")]).certificates


def test_a_cached_chain_is_still_refused_outside_its_validity() -> None:
    vcek, ask_ark = _milan()
    inside = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    anchor, chain = CHAINS.verify(vcek, ask_ark, TrustStore(), "amd", inside)
    assert (anchor.name, len(chain)) == ("amd-ark-milan", 3)
    after = vcek.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(VerificationError) as raised:
        CHAINS.verify(vcek, ask_ark, TrustStore(), "amd", after)  # same leaf and pool: the cached chain
    assert raised.value.check == "validity"


def test_a_cached_chain_does_not_keep_a_simulation_root_trusted() -> None:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    sim = SimulatedSnp("milan", at=at)
    leaf, ask, root = sim.certificates
    anchor, _ = CHAINS.verify(leaf, [ask], TrustStore(simulation_roots=[root]), "amd", at)
    assert anchor.name == "simulation"
    # The same certificates, now only brought by the evidence: the pool is identical, the trust is not.
    with pytest.raises(VerificationError) as raised:
        CHAINS.verify(leaf, [ask, root], TrustStore(), "amd", at)
    assert raised.value.check == "root"


def test_a_pinned_root_of_another_vendor_ends_no_chain() -> None:
    nitro_root = Collateral.from_files([path("aws-nitro/aws_nitro_enclaves_root_g1.pem")]).certificates[0]
    with pytest.raises(VerificationError) as raised:
        CHAINS.verify(nitro_root, [], TrustStore(), "amd", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    assert raised.value.check == "root" and "aws-nitro root" in raised.value.message


def test_a_look_alike_leaf_is_not_accepted_by_the_link_cache() -> None:
    """Links are cached by the fingerprints of both certificates, never by names."""
    vcek, ask_ark = _milan()
    at = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    CHAINS.verify(vcek, ask_ark, TrustStore(), "amd", at)
    impostor_ca = issue("impostor", ec_key(ec.SECP384R1()), None, ca=True,
                        not_before=vcek.not_valid_before_utc, not_after=vcek.not_valid_after_utc)
    forged = (
        x509.CertificateBuilder()
        .subject_name(vcek.subject)
        .issuer_name(vcek.issuer)  # claims the genuine ASK as issuer, signed by another key
        .public_key(ec_key(ec.SECP384R1()).public_key())
        .serial_number(1)
        .not_valid_before(vcek.not_valid_before_utc)
        .not_valid_after(vcek.not_valid_after_utc)
        .sign(impostor_ca.key, vcek.signature_hash_algorithm)
    )
    with pytest.raises(VerificationError) as raised:
        CHAINS.verify(forged, ask_ark, TrustStore(), "amd", at)
    assert raised.value.check == "chain"


def test_a_signature_bit_string_with_unused_bits_is_refused() -> None:
    """cryptography ignores that octet; a changed one would be an unsigned byte that changes nothing."""
    # A real VCEK whose signature ends in a 0 bit, so one unused bit still parses.
    vcek = Collateral.from_files([path("amd-sev-snp/snp_azure_genoa_vcek.pem")]).certificates[0]
    der = bytearray(vcek.public_bytes(Encoding.DER))
    assert readable(vcek)
    der[-len(vcek.signature) - 1] ^= 0x01
    altered = x509.load_der_x509_certificate(bytes(der))
    assert altered.signature == vcek.signature  # the library reads the same signature...
    assert not readable(altered)  # ...and the verifier refuses the encoding
    with pytest.raises(VerificationError) as raised:
        load_der_cached(bytes(der))
    assert raised.value.check == "chain"
