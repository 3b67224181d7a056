"""MAA and Confidential Space token verification, against tokens signed in the documented claim layouts.

No genuine signed token with a matching JWKS exists offline (shared vectors SOURCES.md), so the simulated
issuer signs them; every test names the exact value or check it expects.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from enclave_runtime.attest import Collateral, VerificationError, verify
from enclave_runtime.attest.tokens import CONFIDENTIAL_SPACE_ISSUER, CsClaims, MaaClaims
from enclave_runtime.simulate.tokens import SIMULATED_MAA_ISSUER, TokenIssuer, stand_in

AT = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
LATER = AT + dt.timedelta(minutes=5)

# One RSA key per issuer for the whole module: key generation is the slow part.
MAA = TokenIssuer()
CS = TokenIssuer(CONFIDENTIAL_SPACE_ISSUER)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unverified(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def maa_collateral(issuer: TokenIssuer = MAA) -> Collateral:
    return Collateral(documents=[issuer.jwks(), issuer.discovery()])


def check(kind: str, token: str | bytes, collateral: Collateral, at: dt.datetime = LATER) -> Any:
    return verify(kind, token.encode() if isinstance(token, str) else token, collateral=collateral, at=at)


def refused(
    kind: str, token: str | bytes, collateral: Collateral, at: dt.datetime = LATER
) -> VerificationError:
    with pytest.raises(VerificationError) as caught:
        check(kind, token, collateral, at)
    return caught.value


# --- valid tokens ---------------------------------------------------------------------------------


def test_maa_snp_cvm_guest_token_verifies_with_nested_tee_claims() -> None:
    token = MAA.maa_snp(at=AT, claims={"nonce": "n-0123456789"})
    claims = check("maa-token", token, maa_collateral())
    assert isinstance(claims, MaaClaims)
    payload = unverified(token)
    assert claims.anchor == SIMULATED_MAA_ISSUER
    assert claims.issuer == SIMULATED_MAA_ISSUER
    assert claims.audience is None
    assert claims.issued_at == AT
    assert claims.expires == AT + dt.timedelta(hours=8)
    assert claims.attestation_type == "azurevm"
    assert claims.tee_type == "sevsnpvm"
    assert claims.compliance_status == "azure-compliant-cvm"
    assert claims.launch_measurement == stand_in("launchmeasurement", 96)
    assert claims.host_data == stand_in("hostdata", 64)
    assert claims.report_data == stand_in("reportdata", 64) + "0" * 64
    assert claims.id_key_digest == stand_in("idkeydigest", 96)
    assert claims.author_key_digest == "0" * 96
    assert (claims.guest_svn, claims.vmpl) == (1, 0)
    assert claims.is_debuggable is False
    assert claims.debug is False
    assert (claims.mrenclave, claims.mrsigner, claims.product_id, claims.svn, claims.mrtd) == (None,) * 5
    assert claims.runtime == payload["x-ms-runtime"]
    assert claims.runtime["keys"][0]["kid"] == "TpmEphemeralEncryptionKey"
    assert claims.nonce == "n-0123456789"
    assert claims.claims == payload
    as_dict = claims.as_dict()
    assert as_dict["issued_at"] == "2025-06-01T12:00:00+00:00"
    assert as_dict["claims"]["x-ms-isolation-tee"] == payload["x-ms-isolation-tee"]
    assert (as_dict["debug"], as_dict["simulated"]) == (False, False)


def test_maa_snp_top_level_token_verifies() -> None:
    host_data = "ab" * 32
    token = MAA.maa_snp(nested=False, tee={"x-ms-sevsnpvm-hostdata": host_data}, at=AT)
    claims = check("maa-token", token, maa_collateral())
    assert claims.attestation_type == "sevsnpvm"
    assert claims.tee_type == "sevsnpvm"
    assert claims.compliance_status == "azure-compliant-uvm"
    assert claims.host_data == host_data
    assert claims.launch_measurement == stand_in("launchmeasurement", 96)
    assert claims.debug is False
    assert claims.claims == unverified(token)


def test_maa_sgx_token_verifies() -> None:
    token = MAA.maa_sgx(at=AT, claims={"x-ms-sgx-product-id": 7})
    claims = check("maa-token", token, maa_collateral())
    assert claims.attestation_type == "sgx"
    assert claims.tee_type == "sgx"
    assert claims.compliance_status is None
    assert claims.mrenclave == stand_in("mrenclave", 64)
    assert claims.mrsigner == stand_in("mrsigner", 64)
    assert (claims.product_id, claims.svn) == (7, 2)
    assert claims.enclave_held_data == b64url(bytes.fromhex(stand_in("ehd", 64)))
    assert claims.is_debuggable is False
    assert claims.debug is False
    assert claims.launch_measurement is None
    assert claims.claims == unverified(token)


def test_maa_attest_response_json_is_accepted() -> None:
    token = MAA.maa_sgx(at=AT)
    response = json.dumps({"token": token}).encode()
    assert check("maa-token", response, maa_collateral()).mrenclave == stand_in("mrenclave", 64)


def test_confidential_space_token_verifies() -> None:
    digest = "sha256:" + "c0" * 32
    token = CS.confidential_space(image_digest=digest, at=AT, claims={"hwmodel": "GCP_INTEL_TDX"})
    claims = check("cs-token", token, Collateral(documents=[CS.jwks()]))
    assert isinstance(claims, CsClaims)
    assert claims.anchor == CONFIDENTIAL_SPACE_ISSUER
    assert claims.issuer == "https://confidentialcomputing.googleapis.com"
    assert claims.audience == "https://sts.googleapis.com"
    assert claims.issued_at == AT
    assert claims.expires == AT + dt.timedelta(hours=1)
    assert claims.subject == (
        "https://www.googleapis.com/compute/v1/projects/ccp-workload/zones/europe-west4-a/instances/ccp-workload"
    )
    assert claims.hwmodel == "GCP_INTEL_TDX"
    assert claims.swname == "CONFIDENTIAL_SPACE"
    assert claims.swversion == ["250301"]
    assert claims.dbgstat == "disabled-since-boot"
    assert claims.secboot is True
    assert claims.support_attributes == ["LATEST", "STABLE", "USABLE"]
    assert claims.image_digest == digest
    assert claims.image_reference == f"europe-docker.pkg.dev/ccp-workload/images/workload@{digest}"
    assert claims.image_id == f"sha256:{stand_in('image-id', 64)}"
    assert claims.restart_policy == "Never"
    assert claims.args == ["/workload", "--serve"]
    assert claims.env == {"HOSTNAME": "ccp-workload"}
    assert (claims.cmd_override, claims.env_override) == (None, None)
    assert claims.google_service_accounts == ["ccp-workload@ccp-workload.iam.gserviceaccount.com"]
    assert claims.eat_nonce == [stand_in("eat-nonce", 32)]
    assert claims.debug is False
    assert claims.claims == unverified(token)


def test_confidential_space_overrides_are_read_from_submods_container() -> None:
    token = CS.confidential_space(at=AT)
    payload = unverified(token)
    payload["submods"]["container"] |= {"cmd_override": ["--debug-shell"], "env_override": {"MODE": "x"}}
    claims = check("cs-token", CS.sign(payload), Collateral(documents=[CS.jwks()]))
    assert claims.cmd_override == ["--debug-shell"]
    assert claims.env_override == {"MODE": "x"}


def test_confidential_space_accepts_a_matching_discovery_document() -> None:
    claims = check(
        "cs-token", CS.confidential_space(at=AT), Collateral(documents=[CS.jwks(), CS.discovery()])
    )
    assert claims.issuer == CONFIDENTIAL_SPACE_ISSUER


def test_jwks_and_discovery_given_as_files(tmp_path: Path) -> None:
    (tmp_path / "certs.json").write_text(json.dumps(MAA.jwks()))
    (tmp_path / "openid-configuration.json").write_text(json.dumps(MAA.discovery()))
    collateral = Collateral.from_files([tmp_path / "certs.json", tmp_path / "openid-configuration.json"])
    token_file = tmp_path / "token.jwt"
    token_file.write_text(MAA.maa_snp(at=AT) + "\n")
    claims = verify("maa-token", token_file.read_bytes(), collateral=collateral, at=LATER)
    assert claims.launch_measurement == stand_in("launchmeasurement", 96)


def test_maa_style_jwks_with_only_an_x5c_certificate_works() -> None:
    jwks = MAA.jwks(x5c=True)
    assert set(jwks["keys"][0]) == {"kty", "kid", "x5c"}
    claims = check("maa-token", MAA.maa_sgx(at=AT), Collateral(documents=[jwks, MAA.discovery()]))
    assert claims.mrsigner == stand_in("mrsigner", 64)


def test_x5c_certificate_of_another_key_fails_chain() -> None:
    jwks = MAA.jwks()
    jwks["keys"][0]["x5c"] = TokenIssuer(kid=MAA.kid).jwks(x5c=True)["keys"][0]["x5c"]
    error = refused("maa-token", MAA.maa_sgx(at=AT), Collateral(documents=[jwks, MAA.discovery()]))
    assert (error.check, error.message) == (
        "chain",
        f"JWKS key {MAA.kid!r}: n/e differ from the key of its x5c certificate",
    )


# --- debug ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "issue"),
    [
        ("maa-token", lambda: MAA.maa_snp(debug=True, at=AT)),
        ("maa-token", lambda: MAA.maa_snp(nested=False, debug=True, at=AT)),
        ("maa-token", lambda: MAA.maa_sgx(debug=True, at=AT)),
    ],
)
def test_debuggable_maa_tokens_are_debug(kind: str, issue: Any) -> None:
    claims = check(kind, issue(), maa_collateral())
    assert claims.is_debuggable is True
    assert claims.debug is True
    assert claims.as_dict()["debug"] is True


def test_maa_token_silent_on_debuggability_is_debug() -> None:
    claims = check(
        "maa-token", MAA.maa_snp(tee={"x-ms-sevsnpvm-is-debuggable": None}, at=AT), maa_collateral()
    )
    assert claims.is_debuggable is None
    assert claims.debug is True


def test_confidential_space_debug_image_is_debug() -> None:
    claims = check("cs-token", CS.confidential_space(debug=True, at=AT), Collateral(documents=[CS.jwks()]))
    assert claims.dbgstat == "enabled"
    assert claims.support_attributes is None
    assert claims.debug is True


def test_confidential_space_without_dbgstat_is_debug() -> None:
    token = CS.confidential_space(claims={"dbgstat": None}, at=AT)
    claims = check("cs-token", token, Collateral(documents=[CS.jwks()]))
    assert claims.dbgstat is None
    assert claims.debug is True


# --- times ----------------------------------------------------------------------------------------


def test_expired_token_fails_validity() -> None:
    token = MAA.maa_snp(at=AT)
    expiry = AT + dt.timedelta(hours=8)
    assert check("maa-token", token, maa_collateral(), at=expiry - dt.timedelta(seconds=1)).expires == expiry
    for at in (expiry, expiry + dt.timedelta(seconds=1)):
        error = refused("maa-token", token, maa_collateral(), at=at)
        assert error.check == "validity"
        assert "expired at 2025-06-01T20:00:00+00:00 (exp)" in error.message


def test_not_yet_valid_token_fails_validity() -> None:
    error = refused("cs-token", CS.confidential_space(at=LATER), Collateral(documents=[CS.jwks()]), at=AT)
    assert error.check == "validity"
    assert "not valid before 2025-06-01T12:05:00+00:00 (nbf)" in error.message


def test_token_issued_after_verification_time_fails_validity() -> None:
    token = CS.confidential_space(at=LATER, claims={"nbf": None})
    error = refused("cs-token", token, Collateral(documents=[CS.jwks()]), at=AT)
    assert error.check == "validity"
    assert "issued at 2025-06-01T12:05:00+00:00 (iat)" in error.message


def test_token_without_exp_fails_claims() -> None:
    error = refused("maa-token", MAA.maa_sgx(at=AT, claims={"exp": None}), maa_collateral())
    assert (error.check, error.message) == ("claims", "token has no exp claim: it is required")


# --- issuer ---------------------------------------------------------------------------------------


def test_maa_token_from_another_provider_fails_claims() -> None:
    other = "https://attacker.weu.attest.azure.net"
    error = refused("maa-token", MAA.maa_snp(at=AT, claims={"iss": other}), maa_collateral())
    assert error.check == "claims"
    assert repr(other) in error.message and repr(SIMULATED_MAA_ISSUER) in error.message


def test_maa_discovery_document_of_another_provider_fails_claims() -> None:
    other = TokenIssuer("https://other.wus.attest.azure.net")
    collateral = Collateral(documents=[MAA.jwks(), other.discovery()])
    error = refused("maa-token", MAA.maa_snp(at=AT), collateral)
    assert error.check == "claims"
    assert "'https://other.wus.attest.azure.net'" in error.message


def test_maa_token_without_discovery_document_fails_claims() -> None:
    error = refused("maa-token", MAA.maa_snp(at=AT), Collateral(documents=[MAA.jwks()]))
    assert error.check == "claims"
    assert f"{SIMULATED_MAA_ISSUER}/.well-known/openid-configuration" in error.message


def test_confidential_space_token_with_another_issuer_fails_claims() -> None:
    token = CS.confidential_space(at=AT, claims={"iss": "https://confidentialcomputing.example.com"})
    error = refused("cs-token", token, Collateral(documents=[CS.jwks()]))
    assert error.check == "claims"
    assert "https://confidentialcomputing.example.com" in error.message


def test_confidential_space_with_a_disagreeing_discovery_document_fails_claims() -> None:
    error = refused(
        "cs-token", CS.confidential_space(at=AT), Collateral(documents=[CS.jwks(), MAA.discovery()])
    )
    assert error.check == "claims"
    assert repr(SIMULATED_MAA_ISSUER) in error.message


# --- keys and signature ---------------------------------------------------------------------------


def test_missing_jwks_fails_input() -> None:
    error = refused("maa-token", MAA.maa_snp(at=AT), Collateral(documents=[MAA.discovery()]))
    assert error.check == "input"


def test_unknown_kid_fails_signature() -> None:
    token = MAA.sign(unverified(MAA.maa_snp(at=AT)), headers={"kid": "rotated-away"})
    error = refused("maa-token", token, maa_collateral())
    assert error.check == "signature"
    assert "'rotated-away'" in error.message


def test_token_signed_by_another_key_with_the_same_kid_fails_signature() -> None:
    impostor = TokenIssuer(kid=MAA.kid)
    error = refused("maa-token", impostor.maa_snp(at=AT), maa_collateral())
    assert error.check == "signature"


def test_jwks_key_not_for_signatures_fails_chain() -> None:
    jwks = MAA.jwks()
    jwks["keys"][0]["use"] = "enc"
    error = refused("maa-token", MAA.maa_snp(at=AT), Collateral(documents=[jwks, MAA.discovery()]))
    assert error.check == "chain"
    assert "use 'enc'" in error.message


def test_tampered_payload_fails_signature() -> None:
    token = MAA.maa_snp(at=AT)
    header, _, signature = token.split(".")
    payload = unverified(token)
    payload["x-ms-isolation-tee"]["x-ms-sevsnpvm-is-debuggable"] = False
    payload["x-ms-isolation-tee"]["x-ms-sevsnpvm-launchmeasurement"] = "00" * 48
    forged = ".".join([header, b64url(json.dumps(payload).encode()), signature])
    error = refused("maa-token", forged, maa_collateral())
    assert error.check == "signature"


def test_alg_none_fails_structure() -> None:
    header = b64url(json.dumps({"alg": "none", "kid": MAA.kid, "typ": "JWT"}).encode())
    body = b64url(json.dumps(unverified(MAA.maa_snp(at=AT))).encode())
    error = refused("maa-token", f"{header}.{body}.", maa_collateral())
    assert error.check == "structure"
    assert "alg 'none' is not allowed" in error.message


def test_hs256_with_the_public_key_as_secret_fails_structure() -> None:
    secret = MAA.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = b64url(json.dumps({"alg": "HS256", "kid": MAA.kid, "typ": "JWT"}).encode())
    body = b64url(json.dumps(unverified(MAA.maa_snp(at=AT))).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    error = refused("maa-token", f"{header}.{body}.{b64url(mac)}", maa_collateral())
    assert error.check == "structure"
    assert "alg 'HS256' is not allowed" in error.message


# --- malformed ------------------------------------------------------------------------------------


def test_two_segments_fail_structure() -> None:
    header, body, _ = MAA.maa_snp(at=AT).split(".")
    error = refused("maa-token", f"{header}.{body}", maa_collateral())
    assert error.check == "structure"
    assert "2 dot-separated segments, expected 3" in error.message


def test_bad_base64_fails_structure() -> None:
    header, body, signature = MAA.maa_snp(at=AT).split(".")
    error = refused("maa-token", f"{header}.{body[:10]}!!!{body[10:]}.{signature}", maa_collateral())
    assert error.check == "structure"


def test_payload_not_json_fails_structure() -> None:
    token = jwt.api_jws.encode(b"not json at all", MAA.key, algorithm="RS256", headers={"kid": MAA.kid})
    error = refused("maa-token", token, maa_collateral())
    assert error.check == "structure"


def test_garbage_fails_structure() -> None:
    for garbage in (b"", b"\x00\xff\x10", b"{}", b"not a token"):
        assert refused("cs-token", garbage, Collateral(documents=[CS.jwks()])).check == "structure"


def test_mistyped_claim_fails_claims_naming_it() -> None:
    token = MAA.maa_snp(at=AT, tee={"x-ms-sevsnpvm-vmpl": "0"})
    error = refused("maa-token", token, maa_collateral())
    assert (error.check, error.message) == (
        "claims",
        "claim x-ms-isolation-tee.x-ms-sevsnpvm-vmpl is '0', expected an integer",
    )


def test_confidential_space_token_without_hwmodel_fails_claims() -> None:
    token = CS.confidential_space(at=AT, claims={"hwmodel": None})
    error = refused("cs-token", token, Collateral(documents=[CS.jwks()]))
    assert (error.check, error.message) == ("claims", "token has no hwmodel claim: it is required")
