"""Azure secure key release end to end, offline: azure-keyvault-keys and the SKR client against the
MAA and Key Vault stand-ins, deciding with the recorded release policy of the dev stack."""

from __future__ import annotations

import base64
import builtins
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.keys import KeyClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from components.attestation.azure_release_policy import decode_release_policy, encode_release_policy
from enclave_runtime.keyrelease import KeyReleaseError, WrappedKey, retry
from enclave_runtime.keyrelease import azure as client
from enclave_runtime.simulate.tokens import TokenIssuer
from policies.review.mocks import Recording
from standins.azure import OTHER_AUTHORITY, AzureStandIns, StaticCredential
from standins.stack import PartyKey, load

AUTHORITY = "https://ccpdevdemowesteurope.weu.attest.azure.net"
KEY_URI = "https://dev-demo-azure-clinic-azure-vault.vault.azure.net/keys/clinic-azure-data"
DATA_KEY = bytes(range(32))
SLEPT: list[float] = []


def _backoff(attempts: int = 3) -> retry.Backoff:
    return retry.Backoff(attempts=attempts, sleep=SLEPT.append, jitter=lambda: 0.5)


@pytest.fixture(scope="module")
def azure(dev_recording: Recording) -> Iterator[AzureStandIns]:
    with AzureStandIns(dev_recording, backoff=_backoff()) as standins:
        yield standins


@pytest.fixture
def stand(azure: AzureStandIns) -> Iterator[AzureStandIns]:
    """The shared stand-ins with clean faults and fresh counters around each test."""
    SLEPT.clear()
    azure.backoff = _backoff()
    for running in [azure.vault, *azure.maa.values()]:
        running.faults.clear()
    yield azure
    for running in [azure.vault, *azure.maa.values()]:
        running.faults.clear()


@pytest.fixture(scope="module")
def key(azure: AzureStandIns) -> PartyKey:
    (only,) = azure.party_keys
    assert (only.party, azure.key_url(only)) == ("clinic-azure", KEY_URI)
    return only


@pytest.fixture(scope="module")
def wrapped(azure: AzureStandIns, key: PartyKey) -> WrappedKey:
    return azure.wrapper(key).wrap(DATA_KEY)


def _vault_client(stand: AzureStandIns) -> KeyClient:
    return KeyClient(
        stand.vault.url,
        StaticCredential(stand.workload_token),
        verify_challenge_resource=False,
        connection_verify=str(stand.tls.ca_path),
        api_version="7.3",
        retry_total=0,
    )


def _genuine_token(stand: AzureStandIns, case: str = "approved") -> tuple[str, rsa.RSAPrivateKey]:
    """A token from our MAA stand-in for a simulated group of `case`, with the runtime key it names."""
    ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    runtime = client.runtime_data(ephemeral.public_key())
    releaser = stand.releaser(stand.party_keys[0], case)
    import hashlib

    evidence = stand.guest(case).snp_report(hashlib.sha256(runtime).digest())
    return releaser._attest(evidence, runtime), ephemeral


def _refusal(stand: AzureStandIns, target: str) -> tuple[int, str, str]:
    with pytest.raises(HttpResponseError) as caught:
        _vault_client(stand).release_key("clinic-azure-data", target, version="0123456789abcdef0123456789abcdef")
    error = caught.value
    return error.status_code, error.error.code, error.error.message


# ---------------------------------------------------------------------------------------------- the cases


def test_wrap_is_rsa_oaep_256_under_the_party_key(stand: AzureStandIns, wrapped: WrappedKey) -> None:
    assert wrapped.cloud == "azure" and wrapped.algorithm == "RSA-OAEP-256"
    assert wrapped.key_id == KEY_URI + "/0123456789abcdef0123456789abcdef"
    vault_key = stand.vault_service.keys["clinic-azure-data"]
    assert vault_key.private.key_size == 3072 and len(wrapped.blob) == 384
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert vault_key.private.decrypt(wrapped.blob, oaep) == DATA_KEY


def test_approved_group_gets_the_exact_data_key(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey) -> None:
    released = stand.vault_service.released
    assert stand.releaser(key, "approved").unwrap(wrapped) == DATA_KEY
    assert stand.vault_service.released == released + 1


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("debug", 403, "claim x-ms-sevsnpvm-is-debuggable is true, the policy requires equals false"),
        ("unapproved-image", 403, "claim x-ms-sevsnpvm-hostdata is \""),
        (
            "other-collaboration",
            403,
            f"token issuer '{OTHER_AUTHORITY}' is not an authority of the key's release policy ['{AUTHORITY}']",
        ),
        ("unattested", 400, "target alg is 'none': only RS256 MAA tokens are accepted"),
    ],
)
def test_other_cases_are_refused_with_the_reason(
    stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey, case: str, status: int, reason: str
) -> None:
    released = stand.vault_service.released
    with pytest.raises(KeyReleaseError) as caught:
        stand.releaser(key, case).unwrap(wrapped)
    error = caught.value
    assert (error.service, error.status, error.retryable) == ("Azure Key Vault", status, False)
    assert reason in error.reason
    assert error.reason.startswith(f"HTTP {status} ({'Forbidden' if status == 403 else 'BadParameter'}): ")
    assert stand.vault_service.released == released
    assert SLEPT == []  # a refusal is final at once


def test_unapproved_image_names_both_host_datas(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey) -> None:
    with pytest.raises(KeyReleaseError) as caught:
        stand.releaser(key, "unapproved-image").unwrap(wrapped)
    approved = stand.host_data.hex()
    assert approved == "6a11d30088cebf673590ddb86e921cfde36981f0fbd333f94051a1f9871d85f6"
    assert f'the policy requires equals "{approved}"' in caught.value.reason


def test_maa_token_claims_are_derived_from_the_verified_report(stand: AzureStandIns) -> None:
    token, ephemeral = _genuine_token(stand)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["jku"]) == ("RS256", f"{AUTHORITY}/certs")
    claims = jwt.decode(token, stand.maa_services[AUTHORITY].issuer.key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
    assert claims["iss"] == AUTHORITY
    assert claims["x-ms-attestation-type"] == "sevsnpvm"
    assert claims["x-ms-compliance-status"] == "azure-compliant-uvm"
    assert claims["x-ms-sevsnpvm-hostdata"] == stand.host_data.hex()
    assert claims["x-ms-sevsnpvm-is-debuggable"] is False
    assert claims["x-ms-sevsnpvm-vmpl"] == 0
    assert claims["x-ms-sevsnpvm-launchmeasurement"] == stand.guest("approved").measurement.hex()
    runtime = client.runtime_data(ephemeral.public_key())
    import hashlib

    assert claims["x-ms-sevsnpvm-reportdata"] == hashlib.sha256(runtime).hexdigest() + "0" * 64
    assert claims["x-ms-runtime"] == json.loads(runtime)
    assert claims["x-ms-runtime"]["keys"][0]["kid"] == "TpmEphemeralEncryptionKey"
    assert claims["exp"] - claims["iat"] == 8 * 3600
    debug = jwt.decode(_genuine_token(stand, "debug")[0], options={"verify_signature": False})
    assert debug["x-ms-sevsnpvm-is-debuggable"] is True


def test_maa_refuses_runtime_data_the_report_does_not_bind(stand: AzureStandIns) -> None:
    import requests

    ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    evidence = stand.guest("approved").snp_report(b"\x01" * 32)  # binds something else
    releaser = stand.releaser(stand.party_keys[0], "approved")
    with pytest.raises(KeyReleaseError) as caught:
        releaser._attest(evidence, client.runtime_data(ephemeral.public_key()))
    assert (caught.value.service, caught.value.status, caught.value.retryable) == ("Microsoft Azure Attestation", 400, False)
    assert "(InvalidParameter)" in caught.value.reason and "is not SHA-256(runtimeData)" in caught.value.reason
    assert requests  # the MAA client speaks requests


def test_edited_release_policy_changes_approved_to_refused(dev_report: Path, tmp_path: Path, wrapped: WrappedKey) -> None:
    report = json.loads(dev_report.read_text())
    (resource,) = [r for r in report["resources"] if r["type"] == "azure-native:keyvault:Key" and r["name"].endswith("data-key-key")]
    policy = decode_release_policy(resource["inputs"]["properties"]["releasePolicy"]["data"])
    for condition in policy["anyOf"][0]["allOf"]:
        if condition["claim"] == "x-ms-sevsnpvm-hostdata":
            condition["equals"] = "0" * 64
    resource["inputs"]["properties"]["releasePolicy"]["data"] = encode_release_policy(policy)
    edited = tmp_path / "review-dev.json"
    edited.write_text(json.dumps(report))
    with AzureStandIns(load(edited), backoff=_backoff()) as stand:
        (key,) = stand.party_keys
        rewrapped = stand.wrapper(key).wrap(DATA_KEY)  # the edited vault holds its own key
        with pytest.raises(KeyReleaseError) as caught:
            stand.releaser(key, "approved").unwrap(rewrapped)
    assert caught.value.status == 403
    assert f'claim x-ms-sevsnpvm-hostdata is "{stand.host_data.hex()}", the policy requires equals "{"0" * 64}"' in caught.value.reason


# ---------------------------------------------------------------------------------------------- token tampering


def test_genuine_token_releases_through_the_sdk(stand: AzureStandIns) -> None:
    token, ephemeral = _genuine_token(stand)
    result = _vault_client(stand).release_key("clinic-azure-data", token, algorithm="CKM_RSA_AES_KEY_WRAP")
    private = client.open_release(
        result.value, ephemeral, vault=KEY_URI.split("/keys/")[0], name="clinic-azure-data", version=None, roots=[stand.tls.ca.certificate]
    )
    assert private.private_numbers() == stand.vault_service.keys["clinic-azure-data"].private.private_numbers()


def test_token_with_bad_signature_is_refused(stand: AzureStandIns) -> None:
    token, _ = _genuine_token(stand)
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["x-ms-sevsnpvm-hostdata"] = "0" * 64  # any edit invalidates MAA's signature
    forged = f"{head}.{client.b64url(json.dumps(claims).encode())}.{signature}"
    status, code, message = _refusal(stand, forged)
    assert (status, code) == (400, "BadParameter")
    assert message == f"target token does not verify under {AUTHORITY}/certs: Signature verification failed"


def test_token_signed_by_another_key_for_our_authority_is_refused(stand: AzureStandIns) -> None:
    token, _ = _genuine_token(stand)
    claims = jwt.decode(token, options={"verify_signature": False})
    impostor = TokenIssuer(AUTHORITY, kid=stand.maa_services[AUTHORITY].issuer.kid)
    status, code, message = _refusal(stand, impostor.sign(claims))
    assert (status, code) == (400, "BadParameter")
    assert message.endswith("Signature verification failed")


def test_token_from_an_unknown_issuer_is_refused(stand: AzureStandIns) -> None:
    claims = jwt.decode(_genuine_token(stand)[0], options={"verify_signature": False})
    rogue = TokenIssuer("https://rogue.weu.attest.azure.net")
    status, code, message = _refusal(stand, rogue.sign(claims | {"iss": rogue.issuer}))
    assert (status, code) == (400, "BadParameter")
    assert message == "target issuer 'https://rogue.weu.attest.azure.net' is not an attestation provider whose keys this vault can fetch"


def test_expired_token_is_refused(stand: AzureStandIns) -> None:
    claims = jwt.decode(_genuine_token(stand)[0], options={"verify_signature": False})
    past = int(time.time()) - 9 * 3600
    expired = stand.maa_services[AUTHORITY].issuer.sign(claims | {"iat": past, "nbf": past, "exp": past + 8 * 3600})
    status, code, message = _refusal(stand, expired)
    assert (status, code) == (400, "BadParameter")
    assert message.startswith(f"target token expired at {past + 8 * 3600} ")


# ---------------------------------------------------------------------------------------------- the release answer


def _release_value(stand: AzureStandIns) -> tuple[str, rsa.RSAPrivateKey]:
    token, ephemeral = _genuine_token(stand)
    value = _vault_client(stand).release_key("clinic-azure-data", token, algorithm="CKM_RSA_AES_KEY_WRAP").value
    return value, ephemeral


def _resign(stand: AzureStandIns, payload: dict[str, Any], jws: str) -> str:
    head = jws.split(".")[0]
    signing_input = f"{head}.{client.b64url(json.dumps(payload).encode())}"
    signer = stand.tls.signer.key
    assert isinstance(signer, rsa.RSAPrivateKey)
    return f"{signing_input}.{client.b64url(signer.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def _payload(jws: str) -> dict[str, Any]:
    part = jws.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _open(stand: AzureStandIns, value: str, ephemeral: rsa.RSAPrivateKey) -> rsa.RSAPrivateKey:
    return client.open_release(
        value, ephemeral, vault=KEY_URI.split("/keys/")[0], name="clinic-azure-data", version=None, roots=[stand.tls.ca.certificate]
    )


def test_released_jws_has_the_wire_shape(stand: AzureStandIns) -> None:
    value, ephemeral = _release_value(stand)
    header = json.loads(base64.urlsafe_b64decode(value.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and len(header["x5c"]) == 2 and "x5t#S256" in header
    payload = _payload(value)
    assert payload["request"] == {"api-version": "7.3", "enc": "CKM_RSA_AES_KEY_WRAP", "kid": KEY_URI + "/0123456789abcdef0123456789abcdef"}
    key = payload["response"]["key"]["key"]
    assert (key["kty"], key["kid"]) == ("RSA-HSM", KEY_URI + "/0123456789abcdef0123456789abcdef")
    key_hsm = json.loads(client.b64url_decode(key["key_hsm"], "key_hsm"))
    assert key_hsm["schema_version"] == "1.0"
    assert key_hsm["header"] == {"kid": "TpmEphemeralEncryptionKey", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"}
    ciphertext = client.b64url_decode(key_hsm["ciphertext"], "ciphertext")
    # RSA-OAEP(KEK) is the 2048-bit runtime key's size; the RFC 5649 wrap adds 8 bytes to the padded PKCS#8 DER.
    from cryptography.hazmat.primitives import serialization

    der = stand.vault_service.keys["clinic-azure-data"].private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert len(ciphertext) == 256 + (len(der) + 7) // 8 * 8 + 8
    assert payload["response"]["key"]["attributes"]["exportable"] is True
    assert _open(stand, value, ephemeral).private_numbers() == stand.vault_service.keys["clinic-azure-data"].private.private_numbers()


def test_tampered_key_hsm_is_refused_by_the_client(stand: AzureStandIns) -> None:
    value, ephemeral = _release_value(stand)
    payload = _payload(value)
    key = payload["response"]["key"]["key"]
    key_hsm = json.loads(client.b64url_decode(key["key_hsm"], "key_hsm"))
    ciphertext = bytearray(client.b64url_decode(key_hsm["ciphertext"], "ciphertext"))
    ciphertext[300] ^= 0x01  # inside the RFC 5649 wrap
    key_hsm["ciphertext"] = client.b64url(bytes(ciphertext))
    key["key_hsm"] = client.b64url(json.dumps(key_hsm).encode())
    # Unsigned edit: the JWS signature catches it.
    unsigned = f"{value.split('.')[0]}.{client.b64url(json.dumps(payload).encode())}.{value.split('.')[2]}"
    with pytest.raises(KeyReleaseError, match="JWS signature does not verify under its x5c leaf certificate"):
        _open(stand, unsigned, ephemeral)
    # Re-signed by the vault's own signer (a corrupt answer): the key wrap catches it.
    with pytest.raises(KeyReleaseError, match="RFC 5649 AES key unwrap failed"):
        _open(stand, _resign(stand, payload, value), ephemeral)
    # Wrapped to another runtime key: OAEP fails.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(KeyReleaseError, match="release answer refused by the client"):
        _open(stand, value, other)


def test_release_answer_signed_outside_the_trusted_roots_is_refused(stand: AzureStandIns) -> None:
    value, ephemeral = _release_value(stand)
    from enclave_runtime.simulate.ca import issue, rsa_key
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    stranger = issue("stranger root", rsa_key(), None, ca=True, not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=1))
    with pytest.raises(KeyReleaseError, match="JWS signing certificate does not chain to a trusted root"):
        client.open_release(value, ephemeral, vault=KEY_URI.split("/keys/")[0], name="clinic-azure-data", version=None, roots=[stranger.certificate])
    with pytest.raises(KeyReleaseError, match=r"JWS signing certificate names \['dev-demo-azure-clinic-azure-vault.vault.azure.net'\], not the vault 'evil.vault.azure.net'"):
        client.open_release(value, ephemeral, vault="https://evil.vault.azure.net", name="clinic-azure-data", version=None, roots=[stand.tls.ca.certificate])


# ---------------------------------------------------------------------------------------------- faults


def test_throttled_release_is_retried_then_succeeds(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey) -> None:
    releaser = stand.releaser(key, "approved")
    served = stand.vault.faults.served
    stand.vault.faults.add("status", 429)
    assert releaser.unwrap(wrapped) == DATA_KEY
    assert stand.vault.faults.served - served == 2  # the 429, then the release
    assert SLEPT == [0.5 * 0.05]  # one backoff: jitter 0.5 x base 0.05 x 2^0


def test_persistent_500_gives_up_naming_key_vault(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey) -> None:
    releaser = stand.releaser(key, "approved")
    served = stand.vault.faults.served
    stand.vault.faults.add("status", 500, times=10)
    with pytest.raises(KeyReleaseError) as caught:
        releaser.unwrap(wrapped)
    assert (caught.value.service, caught.value.status, caught.value.retryable) == ("Azure Key Vault", 500, False)
    assert caught.value.reason.startswith("gave up after 3 attempts; last: HTTP 500")
    assert stand.vault.faults.served - served == 3
    assert len(SLEPT) == 2


def test_persistent_500_at_maa_gives_up_naming_maa(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey) -> None:
    releaser = stand.releaser(key, "approved")
    maa = stand.maa[AUTHORITY]
    served, vault_served = maa.faults.served, stand.vault.faults.served
    maa.faults.add("status", 503, times=10)
    with pytest.raises(KeyReleaseError) as caught:
        releaser.unwrap(wrapped)
    assert (caught.value.service, caught.value.status) == ("Microsoft Azure Attestation", 503)
    assert caught.value.reason.startswith("gave up after 3 attempts; last: attest/SevSnpVm answered HTTP 503")
    assert maa.faults.served - served == 3
    assert stand.vault.faults.served == vault_served  # never asked the vault without a token


@pytest.mark.parametrize("service", ["vault", "maa"])
def test_dropped_connection_is_retried(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey, service: str) -> None:
    releaser = stand.releaser(key, "approved")
    running = stand.vault if service == "vault" else stand.maa[AUTHORITY]
    served = running.faults.served
    running.faults.add("drop")
    assert releaser.unwrap(wrapped) == DATA_KEY
    assert running.faults.served - served == 2
    assert len(SLEPT) == 1


def test_plain_http_endpoint_is_refused_before_any_request(stand: AzureStandIns) -> None:
    with pytest.raises(KeyReleaseError, match="is not https: Key Vault and its bearer tokens need TLS"):
        client.AzureWrapper(KEY_URI, StaticCredential("x"), endpoint=stand.vault.url.replace("https", "http"))


# ---------------------------------------------------------------------------------------------- no disk


def test_released_key_is_not_written_to_disk(stand: AzureStandIns, key: PartyKey, wrapped: WrappedKey, monkeypatch: pytest.MonkeyPatch) -> None:
    releaser = stand.releaser(key, "approved")
    writes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(flag in mode for flag in "wax+"):
            writes.append(str(file))
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(str(path))
        return real_os_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)
    before = sorted(p.name for p in stand.tls.directory.iterdir())
    assert releaser.unwrap(wrapped) == DATA_KEY
    monkeypatch.undo()
    assert writes == []
    assert sorted(p.name for p in stand.tls.directory.iterdir()) == before == ["ca.pem", "server.key", "server.pem"]
