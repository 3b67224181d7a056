"""WIF token exchange (CEL via cel-python) and the Cloud KMS IAM binding check."""

from __future__ import annotations

from components.attestation.gcp_condition import (
    ISSUER,
    attribute_condition,
    attribute_mapping,
    digest_principal_set,
)
from enclave_runtime.measurements import ApprovedMeasurements
from policies.review.key_release import claims, gcp

DIGEST = "sha256:" + "a1" * 32
SA = "ccp-cs-study@hospital-project.iam.gserviceaccount.com"
NUMBER = "123456789012"
POOL = "ccp-cs-pool"
MEASUREMENTS = ApprovedMeasurements.model_validate({"version": "1", "confidentialSpace": {"imageDigests": [DIGEST]}})
WORKLOAD = claims.GcpWorkload("hospital-project", NUMBER, SA, "GCP_AMD_SEV", "europe-west4-a")


def provider(condition: str | None = None, audiences: list[str] | None = None) -> gcp.Provider:
    return gcp.Provider(
        project_number=NUMBER,
        pool_id=POOL,
        provider_id="attestation",
        issuer=ISSUER,
        allowed_audiences=["https://sts.googleapis.com"] if audiences is None else audiences,
        condition=attribute_condition(MEASUREMENTS, workload_service_account=SA) if condition is None else condition,
        mapping=attribute_mapping(),
    )


BINDINGS = [gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", digest_principal_set(NUMBER, POOL, DIGEST))]


def test_approved_production_token_is_exchanged_with_mapped_attributes_and_may_decrypt() -> None:
    identity = gcp.exchange(provider(), claims.confidential_space_token(WORKLOAD, DIGEST))
    assert identity is not None
    assert identity.attributes == {"image_digest": DIGEST}
    assert identity.subject == f"gcpcs::{DIGEST}::{NUMBER}::4242424242424242424"
    assert gcp.decrypt_allowed(BINDINGS, identity)


def test_debug_image_token_is_refused_by_the_condition() -> None:
    token = claims.confidential_space_token(WORKLOAD, DIGEST, debug=True)
    assert token["dbgstat"] == "enabled" and "confidential_space" not in token["submods"]
    assert gcp.exchange(provider(), token) is None


def test_condition_without_debug_clauses_admits_debug_images() -> None:
    weak = f"assertion.swname == 'CONFIDENTIAL_SPACE' && assertion.submods.container.image_digest == '{DIGEST}'"
    token = claims.confidential_space_token(WORKLOAD, DIGEST, debug=True)
    assert gcp.release([provider(condition=weak)], BINDINGS, token)


def test_missing_claim_is_refusal_not_error() -> None:
    token = claims.confidential_space_token(WORKLOAD, DIGEST)
    del token["google_service_accounts"]
    assert gcp.exchange(provider(), token) is None


def test_issuer_and_audience_must_match() -> None:
    token = claims.confidential_space_token(WORKLOAD, DIGEST)
    assert gcp.exchange(provider(), token | {"iss": "https://accounts.google.com"}) is None
    assert gcp.exchange(provider(), token | {"aud": "https://example.com"}) is None
    # With no allowed audiences configured, only the provider's own resource name is accepted.
    assert gcp.exchange(provider(audiences=[]), token) is None


def test_binding_must_name_the_same_pool_and_digest() -> None:
    identity = gcp.exchange(provider(), claims.confidential_space_token(WORKLOAD, DIGEST))
    other_digest = [gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", digest_principal_set(NUMBER, POOL, "sha256:" + "b2" * 32))]
    other_pool = [gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", digest_principal_set(NUMBER, "other-pool", DIGEST))]
    viewer = [gcp.Binding("roles/cloudkms.viewer", digest_principal_set(NUMBER, POOL, DIGEST))]
    whole_pool = [gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", f"principalSet://iam.googleapis.com/projects/{NUMBER}/locations/global/workloadIdentityPools/{POOL}/*")]
    assert not gcp.decrypt_allowed(other_digest, identity)
    assert not gcp.decrypt_allowed(other_pool, identity)
    assert not gcp.decrypt_allowed(viewer, identity)
    assert gcp.decrypt_allowed(whole_pool, identity)


def test_without_attestation_only_direct_grants_release() -> None:
    assert not gcp.release([provider()], BINDINGS, None)
    assert not gcp.direct_release(BINDINGS, [SA])
    assert gcp.direct_release(BINDINGS + [gcp.Binding("roles/cloudkms.cryptoKeyDecrypter", f"serviceAccount:{SA}")], [SA])
    assert gcp.direct_release([gcp.Binding("roles/cloudkms.cryptoKeyEncrypterDecrypter", "allAuthenticatedUsers")], [SA])
