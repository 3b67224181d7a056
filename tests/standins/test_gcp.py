"""GCP key release end to end, offline: google-auth (identity_pool, supplier) and google-cloud-kms (REST)
against the STS and Cloud KMS stand-ins, which decide with the dev stack's recorded provider and IAM."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from enclave_runtime.keyrelease import KeyReleaseError, WrappedKey, retry
from enclave_runtime.keyrelease import gcp as client
from enclave_runtime.simulate.tokens import TokenIssuer
from policies.review.mocks import Recording
from standins.cloud import CASES, EXPECTED
from standins.gcp import GcpStandIns, UnattestedProbe, approved_image_digests
from standins.stack import PartyKey, load, party_keys

KEY = "projects/ccp-mock-project/locations/europe-west4/keyRings/dev-demo-gcp-lab-gcp-key/cryptoKeys/dev-demo-gcp-lab-gcp-key"
DIGEST = "sha256:a0e2148f2794b7790dc9c775028636b025312d42873cff16847ef9ec0e42af08"
OTHER_DIGEST = "sha256:" + "b" * 64
AUDIENCE = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ccp-dev-demo/providers/attestation-verifier"
DATA_KEY = bytes(range(32))
NO_SLEEP = retry.Backoff(attempts=3, sleep=lambda _: None)


def _key(recording: Recording) -> PartyKey:
    (key,) = [k for k in party_keys(recording) if k.cloud == "gcp" and k.resource.outputs["id"] == KEY]
    return key


@pytest.fixture(scope="module")
def stand_ins(dev_recording: Recording) -> Iterator[GcpStandIns]:
    with GcpStandIns(dev_recording, approved_image_digests("dev"), backoff=NO_SLEEP) as running:
        yield running


@pytest.fixture
def gcp(stand_ins: GcpStandIns) -> Iterator[GcpStandIns]:
    stand_ins.sts.faults.clear()
    stand_ins.kms.faults.clear()
    yield stand_ins
    stand_ins.sts.faults.clear()
    stand_ins.kms.faults.clear()


@pytest.fixture(scope="module")
def wrapped(stand_ins: GcpStandIns, dev_recording: Recording) -> WrappedKey:
    return stand_ins.wrapper(_key(dev_recording)).wrap(DATA_KEY)


def _refusal(releaser: Any, wrapped: WrappedKey) -> KeyReleaseError:
    with pytest.raises(KeyReleaseError) as caught:
        releaser.unwrap(wrapped)
    return caught.value


# --- the stack's own setup ---------------------------------------------------------------------------


def test_digests_come_from_the_measurements_and_the_key_is_wrapped_by_its_owner(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey
) -> None:
    assert approved_image_digests("dev") == [DIGEST]
    assert gcp.owner(_key(dev_recording)) == "group:data-owners@lab-gcp.example"
    assert gcp.federation(_key(dev_recording)).audience == AUDIENCE
    assert (wrapped.cloud, wrapped.key_id, wrapped.algorithm) == ("gcp", KEY, "GOOGLE_SYMMETRIC_ENCRYPTION")
    assert DATA_KEY not in wrapped.blob and len(wrapped.blob) == 12 + 32 + 16  # nonce, ciphertext, GCM tag


def test_approved_workload_gets_the_exact_data_key_with_fresh_evidence(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey
) -> None:
    workload = gcp.workload("approved")
    releaser = client.GcpReleaser(
        gcp.federation(_key(dev_recording)), workload, api_endpoint=gcp.kms.url, backoff=NO_SLEEP
    )
    exchanged = gcp.sts_service.exchanged
    assert releaser.unwrap(wrapped) == DATA_KEY
    assert releaser.unwrap(wrapped) == DATA_KEY
    assert workload.issued == 2  # a new attestation token per unwrap
    assert gcp.sts_service.exchanged == exchanged + 2  # and a new STS exchange


@pytest.mark.parametrize(
    ("case", "service", "status", "reason"),
    [
        ("debug", "GCP STS", 400, "dbgstat='enabled'"),
        ("unapproved-image", "GCP STS", 400, "image_digest='sha256:"),
        (
            "other-collaboration",
            "GCP STS",
            400,
            "google_service_accounts=['workload@other-collab-project.iam.gserviceaccount.com']",
        ),
        (
            "unattested",
            "Cloud KMS",
            403,
            "Caller serviceAccount:ccp-cs-dev-demo@ccp-mock-project.iam.gserviceaccount.com matches none",
        ),
    ],
)
def test_every_other_case_is_refused_with_the_reason(
    gcp: GcpStandIns,
    dev_recording: Recording,
    wrapped: WrappedKey,
    case: str,
    service: str,
    status: int,
    reason: str,
) -> None:
    assert EXPECTED[case] == "denied" and case in CASES
    releaser = gcp.releaser(_key(dev_recording), case)
    served = gcp.sts.faults.served, gcp.kms.faults.served
    error = _refusal(releaser, wrapped)
    assert (error.service, error.status, error.retryable) == (service, status, False)
    assert reason in error.reason
    if service == "GCP STS":
        assert (
            "Error code invalid_grant: The given credential is rejected by the attribute condition"
            in error.reason
        )
        assert (gcp.sts.faults.served, gcp.kms.faults.served) == (
            served[0] + 1,
            served[1],
        )  # final at once, KMS never asked
    else:
        assert "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource" in error.reason
        assert (gcp.sts.faults.served, gcp.kms.faults.served) == (
            served[0],
            served[1] + 1,
        )  # no STS, no retry


def test_the_unattested_probe_is_not_the_releaser(gcp: GcpStandIns, dev_recording: Recording) -> None:
    assert isinstance(gcp.releaser(_key(dev_recording), "unattested"), UnattestedProbe)
    assert not hasattr(client, "UnattestedProbe")
    assert isinstance(gcp.releaser(_key(dev_recording), "approved"), client.GcpReleaser)


def test_only_the_owner_may_wrap(gcp: GcpStandIns, dev_recording: Recording) -> None:
    import google.oauth2.credentials

    account = gcp.workload("approved").service_accounts[0]
    credentials = google.oauth2.credentials.Credentials(token=gcp.user_token(f"serviceAccount:{account}"))
    wrapper = client.GcpWrapper(KEY, credentials, api_endpoint=gcp.kms.url, backoff=NO_SLEEP)
    with pytest.raises(KeyReleaseError) as caught:
        wrapper.wrap(DATA_KEY)
    assert (caught.value.service, caught.value.status) == ("Cloud KMS", 403)
    assert "Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied" in caught.value.reason
    assert "group:data-owners@lab-gcp.example" in caught.value.reason


# --- editing the recording changes the decision ------------------------------------------------------


def _edited(
    dev_report: Path, tmp_path: Path, resource_type: str, field: str, old: str, new: str
) -> Recording:
    report = json.loads(dev_report.read_text())
    edited = 0
    for resource in report["resources"]:
        value = resource["inputs"].get(field)
        if resource["type"] == resource_type and isinstance(value, str) and old in value:
            resource["inputs"][field] = value.replace(old, new)
            edited += 1
    assert edited == 1
    path = tmp_path / "review-dev.json"
    path.write_text(json.dumps(report))
    return load(path)


@pytest.mark.parametrize(
    ("resource_type", "field", "service", "reason"),
    [
        (
            "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider",
            "attributeCondition",
            "GCP STS",
            "rejected by the attribute condition of provider 'attestation-verifier'",
        ),
        (
            "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
            "member",
            "Cloud KMS",
            f"attribute.image_digest={DIGEST}) matches none of the key's members",
        ),
    ],
)
def test_editing_the_recorded_policy_turns_approved_into_refused(
    dev_report: Path, tmp_path: Path, resource_type: str, field: str, service: str, reason: str
) -> None:
    recording = _edited(dev_report, tmp_path, resource_type, field, DIGEST, OTHER_DIGEST)
    with GcpStandIns(recording, [DIGEST], backoff=NO_SLEEP) as edited:
        key = _key(recording)
        wrapped = edited.wrapper(key).wrap(DATA_KEY)
        error = _refusal(edited.releaser(key, "approved"), wrapped)
    assert error.service == service and not error.retryable
    assert reason in error.reason


def test_the_unedited_copy_still_releases(dev_report: Path, tmp_path: Path) -> None:
    """The edit test's control: the same copy-and-load path without the edit grants."""
    path = tmp_path / "review-dev.json"
    path.write_text(dev_report.read_text())
    recording = load(path)
    with GcpStandIns(recording, [DIGEST], backoff=NO_SLEEP) as copy_:
        key = _key(recording)
        assert copy_.releaser(key, "approved").unwrap(copy_.wrapper(key).wrap(DATA_KEY)) == DATA_KEY


# --- token tampering ---------------------------------------------------------------------------------


class _Tampered:
    """A valid token with its payload changed after signing (dbgstat flipped to look production)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def token(self, audience: str) -> bytes:
        header, payload, signature = self.inner.token(audience).split(b".")
        claims = json.loads(base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4)))
        claims["submods"]["container"]["image_digest"] = OTHER_DIGEST
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
        return b".".join([header, forged, signature])


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("payload", "subject_token rejected (signature)"),
        ("other-signer", "subject_token rejected (signature)"),
        ("expired", "subject_token rejected (validity): token expired at"),
        (
            "wrong-audience",
            "The audience 'https://attacker.example' in the subject token does not match the provider's allowed audiences ['https://sts.googleapis.com']",
        ),
    ],
)
def test_tampered_tokens_are_refused(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey, tamper: str, reason: str
) -> None:
    import time

    source: Any = {
        "payload": lambda: _Tampered(gcp.workload("approved")),
        "other-signer": lambda: gcp.workload(
            "approved", issuer=TokenIssuer(gcp.issuer.issuer, kid=gcp.issuer.kid)
        ),
        "expired": lambda: gcp.workload("approved", claims={"exp": int(time.time()) - 5}),
        "wrong-audience": lambda: gcp.workload("approved", claims={"aud": "https://attacker.example"}),
    }[tamper]()
    releaser = client.GcpReleaser(
        gcp.federation(_key(dev_recording)), source, api_endpoint=gcp.kms.url, backoff=NO_SLEEP
    )
    error = _refusal(releaser, wrapped)
    assert (error.service, error.status, error.retryable) == ("GCP STS", 400, False)
    assert "Error code invalid_grant" in error.reason and reason in error.reason


def test_an_unknown_provider_audience_is_refused(gcp: GcpStandIns, wrapped: WrappedKey) -> None:
    federation = client.Federation(
        "123456789012", "ccp-dev-demo", "someone-elses", token_url=f"{gcp.sts.url}/v1/token"
    )
    error = _refusal(
        client.GcpReleaser(federation, gcp.workload("approved"), api_endpoint=gcp.kms.url, backoff=NO_SLEEP),
        wrapped,
    )
    assert (error.service, error.status) == ("GCP STS", 400)
    assert (
        "Error code invalid_target: audience '//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/ccp-dev-demo/providers/someone-elses' names no"
        in error.reason
    )


# --- faults ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "status"), [("kms", 429), ("sts", 429), ("kms", 503), ("sts", 500)])
def test_a_transient_error_is_retried_then_succeeds(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey, server: str, status: int
) -> None:
    running = getattr(gcp, server)
    running.faults.add("status", status)
    before = running.faults.served
    assert gcp.releaser(_key(dev_recording), "approved").unwrap(wrapped) == DATA_KEY
    assert running.faults.served - before == 2 and running.faults.queue == []


@pytest.mark.parametrize(
    ("server", "service", "status"), [("kms", "Cloud KMS", 500), ("sts", "GCP STS", 503)]
)
def test_a_persistent_error_gives_up_after_bounded_attempts_naming_the_service(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey, server: str, service: str, status: int
) -> None:
    running = getattr(gcp, server)
    running.faults.add("status", status, times=10)
    before = running.faults.served
    error = _refusal(gcp.releaser(_key(dev_recording), "approved"), wrapped)
    assert running.faults.served - before == NO_SLEEP.attempts == 3
    assert (error.service, error.status, error.retryable) == (service, status, False)
    assert error.reason.startswith("gave up after 3 attempts; last: ")
    assert "injected fault" in error.reason


@pytest.mark.parametrize("server", ["kms", "sts"])
def test_a_dropped_connection_is_retried(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey, server: str
) -> None:
    running = getattr(gcp, server)
    running.faults.add("drop")
    before = running.faults.served
    assert gcp.releaser(_key(dev_recording), "approved").unwrap(wrapped) == DATA_KEY
    assert running.faults.served - before == 2


def test_connections_dropped_every_time_give_up(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey
) -> None:
    gcp.kms.faults.add("drop", times=10)
    error = _refusal(gcp.releaser(_key(dev_recording), "approved"), wrapped)
    assert error.service == "Cloud KMS"
    assert error.reason.startswith("gave up after 3 attempts; last: cannot reach Cloud KMS: ConnectionError")


def test_a_timeout_is_retried(gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey) -> None:
    gcp.kms.faults.add("delay", 1.0)
    before = gcp.kms.faults.served
    releaser = client.GcpReleaser(
        gcp.federation(_key(dev_recording)),
        gcp.workload("approved"),
        api_endpoint=gcp.kms.url,
        timeout=0.3,
        backoff=NO_SLEEP,
    )
    assert releaser.unwrap(wrapped) == DATA_KEY
    assert gcp.kms.faults.served - before == 2


# --- integrity and secrecy ---------------------------------------------------------------------------


def test_crc32c_is_castagnoli() -> None:
    assert client.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720 B.4)
    assert client.crc32c(b"") == 0


def test_a_corrupted_ciphertext_is_refused_by_kms(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey
) -> None:
    blob = bytearray(wrapped.blob)
    blob[-1] ^= 1
    corrupted = WrappedKey("gcp", wrapped.key_id, wrapped.algorithm, bytes(blob))
    error = _refusal(gcp.releaser(_key(dev_recording), "approved"), corrupted)
    assert (error.service, error.status, error.reason) == (
        "Cloud KMS",
        400,
        "Decryption failed: the ciphertext is invalid.",
    )


_WRITING = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_watching = threading.Event()
_opened: list[tuple[str, Any, Any]] = []
_hooked = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _watching.is_set():
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITING
        )
        if writes:
            _opened.append((str(path), mode, flags))


def test_neither_the_released_key_nor_the_token_is_written_to_disk(
    gcp: GcpStandIns, dev_recording: Recording, wrapped: WrappedKey
) -> None:
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)  # cannot be removed; inert unless `_watching` is set
        _hooked = True
    workload = gcp.workload("approved")
    releaser = client.GcpReleaser(
        gcp.federation(_key(dev_recording)), workload, api_endpoint=gcp.kms.url, backoff=NO_SLEEP
    )
    releaser.unwrap(wrapped)  # warm imports and connections outside the watch
    _opened.clear()
    _watching.set()
    try:
        assert releaser.unwrap(wrapped) == DATA_KEY
    finally:
        _watching.clear()
    assert _opened == []  # no file opened for writing anywhere in the process during a release
    credentials = releaser._credentials  # noqa: SLF001 - the config must name no credential file
    assert credentials._credential_source_file is None and credentials._subject_token_supplier is not None  # noqa: SLF001


def test_the_audit_watch_catches_a_write(tmp_path: Path) -> None:
    """Control for the test above: a write during the watch is seen."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    _opened.clear()
    _watching.set()
    try:
        (tmp_path / "token").write_bytes(b"x")
    finally:
        _watching.clear()
    assert [path for path, _, _ in _opened] == [str(tmp_path / "token")]


def test_the_real_source_reads_the_launchers_default_token(tmp_path: Path) -> None:
    token = TokenIssuer().confidential_space().encode()
    (tmp_path / "attestation_verifier_claims_token").write_bytes(token + b"\n")
    assert client.LauncherTokens(str(tmp_path)).token(client.STS_AUDIENCE) == token
    with pytest.raises(KeyReleaseError) as caught:
        client.LauncherTokens(str(tmp_path / "absent")).token(client.STS_AUDIENCE)
    assert caught.value.service == "Confidential Space launcher"
    assert "attestation_verifier_claims_token" in caught.value.reason
