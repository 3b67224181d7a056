"""Signed measurements: verified in config parsing, before any resource can be declared."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from enclave_runtime.measurements import ApprovedMeasurements
from components.attestation.signing import (
    SignatureError,
    load_public_key,
    public_key_pem,
    sign_measurements,
    verify_measurements,
)
from stacks import config

ROOT = Path(__file__).resolve().parents[2]


def banks_raw() -> dict[str, Any]:
    return config.read_stack_file(ROOT / "Pulumi.banks.yaml")


def signed_raw(private_key: Any, key_id: str, signers: dict[str, str]) -> dict[str, Any]:
    raw = banks_raw()
    measurements = ApprovedMeasurements.model_validate(raw["collaboration"]["measurements"])
    signature = sign_measurements(measurements, private_key, key_id)
    raw["collaboration"]["measurements"]["signature"] = signature.model_dump(by_alias=True)
    raw["measurementSigners"] = signers
    return raw


@pytest.mark.parametrize(
    "private_key",
    [ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())],
    ids=["ed25519", "ecdsa-p256"],
)
def test_good_signature_is_accepted(private_key: Any) -> None:
    raw = signed_raw(private_key, "bank-north-release", {"bank-north-release": public_key_pem(private_key)})
    settings = config.parse(raw)
    assert settings.collaboration.measurements.signature.key_id == "bank-north-release"
    assert set(settings.measurement_signers) == {"bank-north-release"}


def test_tampered_measurement_is_refused_naming_the_key() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = signed_raw(key, "bank-north-release", {"bank-north-release": public_key_pem(key)})
    raw["collaboration"]["measurements"]["nitro"]["pcr0"] = "1" * 96
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    (problem,) = error.value.problems
    assert problem.startswith("ccp:collaboration.measurements.signature: signer key 'bank-north-release':")
    assert "does not verify" in problem


def test_pin_change_alone_breaks_the_signature() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = signed_raw(key, "k", {"k": public_key_pem(key)})
    raw["collaboration"]["measurements"]["nitro"]["pin"] = ["pcr0", "pcr8"]
    with pytest.raises(config.ConfigError, match="does not verify"):
        config.parse(raw)


def test_unknown_key_id_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = signed_raw(key, "mallory", {"bank-north-release": public_key_pem(key)})
    with pytest.raises(config.ConfigError) as error:
        config.parse(raw)
    assert error.value.problems == [
        "ccp:collaboration.measurements.signature: signer key 'mallory': is not one of the configured "
        "signers (bank-north-release)"
    ]


def test_signature_by_another_configured_key_is_refused() -> None:
    signer, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    raw = signed_raw(signer, "k", {"k": public_key_pem(other)})
    with pytest.raises(config.ConfigError, match="signer key 'k'.*does not verify"):
        config.parse(raw)


def test_signers_without_signature_and_signature_without_signers_are_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = banks_raw() | {"measurementSigners": {"k": public_key_pem(key)}}
    with pytest.raises(config.ConfigError, match="measurements are not signed"):
        config.parse(raw)
    raw = signed_raw(key, "k", {})
    with pytest.raises(config.ConfigError, match="signer key 'k': the measurements are signed but"):
        config.parse(raw)


def test_unsigned_without_signers_is_allowed() -> None:
    assert config.parse(banks_raw()).collaboration.measurements.signature is None


def test_other_key_types_and_bad_encodings_are_refused() -> None:
    rsa_pem = public_key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(SignatureError, match="neither Ed25519 nor ECDSA P-256"):
        load_public_key("r", rsa_pem)
    p384 = public_key_pem(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(SignatureError, match="neither Ed25519 nor ECDSA P-256"):
        load_public_key("p", p384)
    with pytest.raises(SignatureError, match="not a PEM public key"):
        load_public_key("x", "not a key")
    key = ed25519.Ed25519PrivateKey.generate()
    measurements = ApprovedMeasurements.model_validate(banks_raw()["collaboration"]["measurements"])
    bad = measurements.model_copy(update={"signature": sign_measurements(measurements, key, "k").model_copy(update={"signature": "!!"})})
    with pytest.raises(SignatureError, match="not base64"):
        verify_measurements(bad, {"k": public_key_pem(key)})


def test_url_safe_base64_signatures_verify() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    measurements = ApprovedMeasurements.model_validate(banks_raw()["collaboration"]["measurements"])
    raw = key.sign(measurements.canonical_json())
    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    signed = measurements.model_copy(update={"signature": sign_measurements(measurements, key, "k").model_copy(update={"signature": text})})
    verify_measurements(signed, {"k": public_key_pem(key)})
