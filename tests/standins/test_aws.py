"""AWS KMS key release end to end on loopback: boto3 against the KMS stand-in, deciding with the
review's IAM evaluator over the dev stack's recorded key policy, the simulated Nitro enclave presenting
each case, and the client opening KMS's CMS answer."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest
from asn1crypto import cms
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from enclave_runtime.keyrelease import KeyReleaseError, KeySession, WrappedKey, retry
from enclave_runtime.keyrelease.aws import (
    AwsReleaser,
    AwsWrapper,
    CmsError,
    kms_client,
    open_recipient_ciphertext,
)
from enclave_runtime.simulate.nitro import SimulatedNitro, SimulatedNitroEnclave
from standins.aws_kms import UnattestedProbe
from policies.review import project
from policies.review.mocks import Recording
from policies.review.run import REPO_ROOT, ccp_settings
from standins.aws_kms import (
    OTHER_COLLABORATION_ROLE,
    AwsStandIns,
    KmsKey,
    KmsStandIn,
    access_key_id,
    envelope_for_recipient,
)
from standins.cloud import CASES, EXPECTED
from standins.server import Request, Running, json_response
from standins.stack import PartyKey, load

ATTEMPTS = 3
ENCLAVE_ROLE = "arn:aws:iam::111122223333:role/ccp-dev-demo-dev-enclave"
OWNER_ROLE = "arn:aws:iam::111122223333:role/clinic-aws-data-owner"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/dev-demo-aws-clinic-aws-key-id"
DEV_PCR0 = "eecef00a5261e0bff06cafee3b679a74b1fd018983c924a5ee535aba84408d02d2b3d5d161d0c16afaccffc90a5c14a0"
NO_SLEEP = retry.Backoff(attempts=ATTEMPTS, sleep=lambda _: None)


@pytest.fixture(scope="module")
def settings() -> Any:
    return ccp_settings(project.load(REPO_ROOT, "dev"))


@pytest.fixture(scope="module")
def standins(dev_recording: Recording, settings: Any) -> Iterator[AwsStandIns]:
    running = AwsStandIns(dev_recording, settings, backoff=NO_SLEEP, connect_timeout=1.0, read_timeout=0.4)
    yield running
    running.stop()


@pytest.fixture
def kms(standins: AwsStandIns) -> Iterator[AwsStandIns]:
    """The module's stand-ins with no faults left over from another test."""
    standins.server.faults.clear()
    yield standins
    standins.server.faults.clear()


@pytest.fixture(scope="module")
def clinic(standins: AwsStandIns) -> PartyKey:
    (key,) = [k for k in standins.party_keys if k.party == "clinic-aws"]
    return key


@pytest.fixture(scope="module")
def data_key() -> bytes:
    return bytes(range(32))


@pytest.fixture(scope="module")
def wrapped(standins: AwsStandIns, clinic: PartyKey, data_key: bytes) -> WrappedKey:
    return standins.wrapper(clinic).wrap(data_key)


# --- the cases ----------------------------------------------------------------------------------------


def test_the_stack_has_the_expected_aws_key_and_principals(kms: AwsStandIns, clinic: PartyKey) -> None:
    assert clinic.resource.outputs["arn"] == KEY_ARN
    assert kms.enclave_role == ENCLAVE_ROLE
    assert kms.owners[clinic.resource.urn] == OWNER_ROLE
    assert set(kms.credentials.values()) == {ENCLAVE_ROLE, OWNER_ROLE, OTHER_COLLABORATION_ROLE}
    assert OTHER_COLLABORATION_ROLE.split(":")[4] == "444455556666"


def test_owner_wraps_under_the_party_key(wrapped: WrappedKey) -> None:
    assert (wrapped.cloud, wrapped.key_id, wrapped.algorithm) == ("aws", KEY_ARN, "SYMMETRIC_DEFAULT")
    assert bytes(range(32)) not in wrapped.blob


def test_approved_enclave_gets_the_exact_data_key(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, data_key: bytes) -> None:
    before = kms.server.faults.served
    assert kms.releaser(clinic, "approved").unwrap(wrapped) == data_key
    assert kms.server.faults.served - before == 1
    decision = kms.service.decisions[-1]
    assert (decision["action"], decision["principal"], decision["decision"]) == ("kms:Decrypt", ENCLAVE_ROLE, "allow")


def test_session_releases_once(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, data_key: bytes) -> None:
    session = KeySession({"aws": kms.releaser(clinic, "approved")})
    assert session.data_key(wrapped) == data_key
    assert session.data_key(wrapped) == data_key
    assert session.releases == 1


REFUSALS = {
    "debug": "with an explicit deny in a resource-based policy (stand-in: explicit deny in statement DenyDecryptByUnapprovedEnclavePCR0 (",
    "unapproved-image": "with an explicit deny in a resource-based policy (stand-in: explicit deny in statement DenyDecryptByUnapprovedEnclavePCR0 (",
    "other-collaboration": f"because no resource-based policy allows the kms:Decrypt action (stand-in: no statement allows kms:Decrypt to {OTHER_COLLABORATION_ROLE})",
    "unattested": "with an explicit deny in a resource-based policy (stand-in: explicit deny in statement DenyDecryptWithoutAttestation (Null kms:RecipientAttestation:ImageSha384 'true' (request: absent)))",
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_every_other_case_is_refused_with_the_policy_reason(
    kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, case: str
) -> None:
    assert EXPECTED[case] == "denied"
    principal = OTHER_COLLABORATION_ROLE if case == "other-collaboration" else ENCLAVE_ROLE
    before = kms.server.faults.served
    with pytest.raises(KeyReleaseError) as refused:
        kms.releaser(clinic, case).unwrap(wrapped)
    error = refused.value
    assert error.service == "AWS KMS"
    assert error.status == 400 and error.retryable is False
    assert error.reason.startswith(
        f"AccessDeniedException: User: {principal} is not authorized to perform: kms:Decrypt on resource: {KEY_ARN} "
    )
    assert REFUSALS[case] in error.reason
    assert kms.server.faults.served - before == 1  # a refusal is final: not retried
    assert kms.service.decisions[-1]["decision"] == "deny"


def test_the_cases_cover_cloud_cases() -> None:
    assert set(REFUSALS) | {"approved"} == set(CASES)


def test_debug_and_unapproved_name_the_pcr_values_presented(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey) -> None:
    with pytest.raises(KeyReleaseError) as debug:
        kms.releaser(clinic, "debug").unwrap(wrapped)
    assert f"StringNotEqualsIgnoreCase kms:RecipientAttestation:ImageSha384 '{DEV_PCR0}' (request: '{'0' * 96}')" in debug.value.reason
    with pytest.raises(KeyReleaseError) as unapproved:
        kms.releaser(clinic, "unapproved-image").unwrap(wrapped)
    presented = kms.enclave("unapproved-image").pcrs[0].hex()
    assert presented != DEV_PCR0
    assert f"(request: '{presented}')" in unapproved.value.reason


def test_unattested_probe_is_a_separate_demo_only_type(kms: AwsStandIns, clinic: PartyKey) -> None:
    probe = kms.releaser(clinic, "unattested")
    assert isinstance(probe, UnattestedProbe) and not isinstance(probe, AwsReleaser)
    with pytest.raises(TypeError, match="evidence source"):
        AwsReleaser(kms.client(ENCLAVE_ROLE, "eu-west-1"), None)  # type: ignore[arg-type]


def test_refusal_carries_no_plaintext_or_recipient_ciphertext(kms: AwsStandIns, wrapped: WrappedKey) -> None:
    client = kms.client(ENCLAVE_ROLE, "eu-west-1")
    with pytest.raises(ClientError) as refused:
        client.decrypt(CiphertextBlob=wrapped.blob, KeyId=wrapped.key_id)
    response = refused.value.response
    assert response["Error"]["Code"] == "AccessDeniedException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert not {"Plaintext", "CiphertextForRecipient"} & set(response)


def test_edited_recorded_policy_refuses_the_approved_enclave(dev_report: Path, settings: Any, data_key: bytes, tmp_path: Path) -> None:
    report = json.loads(dev_report.read_text())
    edited = 0
    for resource in report["resources"]:
        if resource["type"] == "aws:kms/key:Key" and resource.get("outputs", {}).get("arn") == KEY_ARN:
            for side in ("inputs", "outputs"):
                text = resource[side]["policy"]
                assert text.count(DEV_PCR0) == 2  # the Allow and the PCR0 Deny
                resource[side]["policy"] = text.replace(DEV_PCR0, "ab" * 48)
                edited += 1
    assert edited == 2
    path = tmp_path / "review-dev.json"
    path.write_text(json.dumps(report))
    running = AwsStandIns(load(path), settings, backoff=NO_SLEEP)
    try:
        (key,) = [k for k in running.party_keys if k.party == "clinic-aws"]
        wrapped = running.wrapper(key).wrap(data_key)
        with pytest.raises(KeyReleaseError) as refused:
            running.releaser(key, "approved").unwrap(wrapped)
        assert "explicit deny in statement DenyDecryptByUnapprovedEnclavePCR0 (" in refused.value.reason
        assert f"'{'ab' * 48}' (request: '{DEV_PCR0}')" in refused.value.reason
    finally:
        running.stop()


# --- other stand-in behaviour ---------------------------------------------------------------------------


def test_owner_may_describe_but_the_enclave_may_not_encrypt(kms: AwsStandIns) -> None:
    owner = kms.client(OWNER_ROLE, "eu-west-1")
    metadata = owner.describe_key(KeyId=KEY_ARN)["KeyMetadata"]
    assert (metadata["Arn"], metadata["KeyId"], metadata["KeySpec"]) == (KEY_ARN, "dev-demo-aws-clinic-aws-key-id", "SYMMETRIC_DEFAULT")
    with pytest.raises(ClientError) as refused:
        kms.client(ENCLAVE_ROLE, "eu-west-1").encrypt(KeyId=KEY_ARN, Plaintext=b"x" * 32)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "not authorized to perform: kms:Encrypt" in refused.value.response["Error"]["Message"]


def test_owner_may_not_decrypt_even_its_own_blob(kms: AwsStandIns, wrapped: WrappedKey) -> None:
    with pytest.raises(ClientError) as refused:
        kms.client(OWNER_ROLE, "eu-west-1").decrypt(CiphertextBlob=wrapped.blob)
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "DenyDecryptWithoutAttestation" in refused.value.response["Error"]["Message"]


def test_generate_data_key_with_recipient_returns_no_plaintext(kms: AwsStandIns, clinic: PartyKey) -> None:
    enclave = kms.enclave("approved")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    client = kms.client(ENCLAVE_ROLE, "eu-west-1")
    answer = client.generate_data_key(
        KeyId=KEY_ARN,
        KeySpec="AES_256",
        Recipient={"AttestationDocument": enclave.attest(spki), "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"},
    )
    assert not answer.get("Plaintext")
    assert answer["KeyId"] == KEY_ARN
    generated = open_recipient_ciphertext(answer["CiphertextForRecipient"], private)
    assert len(generated) == 32
    # the blob it returned opens (attested) to the same key
    wrapped = WrappedKey("aws", KEY_ARN, "SYMMETRIC_DEFAULT", answer["CiphertextBlob"])
    assert kms.releaser(clinic, "approved").unwrap(wrapped) == generated
    with pytest.raises(ClientError) as refused:
        client.generate_data_key(KeyId=KEY_ARN, KeySpec="AES_256")
    assert "DenyDecryptWithoutAttestation" in refused.value.response["Error"]["Message"]


def test_unknown_access_key_is_unrecognized_and_final(kms: AwsStandIns, wrapped: WrappedKey) -> None:
    client = kms_client(region="eu-west-1", endpoint_url=kms.url, access_key_id="AKIAUNKNOWN000000000", secret_access_key="x")
    before = kms.server.faults.served
    with pytest.raises(KeyReleaseError) as refused:
        AwsReleaser(client, kms.enclave("approved"), backoff=NO_SLEEP).unwrap(wrapped)
    assert refused.value.reason == "UnrecognizedClientException: The security token included in the request is invalid."
    assert kms.server.faults.served - before == 1


def test_untrusted_or_stale_attestation_documents_are_refused(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey) -> None:
    client = kms.client(ENCLAVE_ROLE, "eu-west-1")
    foreign = SimulatedNitroEnclave(SimulatedNitro(), kms.enclave("approved").pcrs)
    with pytest.raises(KeyReleaseError) as untrusted:
        AwsReleaser(client, foreign, backoff=NO_SLEEP).unwrap(wrapped)
    assert untrusted.value.reason.startswith("ValidationException: Recipient.AttestationDocument does not verify: ")
    stale_clock = lambda: dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)  # noqa: E731
    stale = SimulatedNitroEnclave(kms.sim, kms.enclave("approved").pcrs, clock=stale_clock)
    with pytest.raises(KeyReleaseError) as old:
        AwsReleaser(client, stale, backoff=NO_SLEEP).unwrap(wrapped)
    assert old.value.reason.startswith("ValidationException: Recipient.AttestationDocument is stale: made ")


def _permissive_service(keys: list[KmsKey]) -> tuple[Running, Any]:
    service = KmsStandIn(keys, {access_key_id("arn:aws:iam::111122223333:role/any"): "arn:aws:iam::111122223333:role/any"})
    server = Running(service.handle)
    client = kms_client(
        region="eu-west-1", endpoint_url=server.url, access_key_id=access_key_id("arn:aws:iam::111122223333:role/any"), secret_access_key="s"
    )
    return server, client


def test_blob_of_one_key_does_not_open_under_another() -> None:
    policy = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/any"}, "Action": "kms:*", "Resource": "*"}]}
    a = KmsKey("arn:aws:kms:eu-west-1:111122223333:key/a", policy)
    b = KmsKey("arn:aws:kms:eu-west-1:111122223333:key/b", policy)
    server, client = _permissive_service([a, b])
    try:
        blob = client.encrypt(KeyId=a.arn, Plaintext=b"secret")["CiphertextBlob"]
        assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
        with pytest.raises(ClientError) as wrong:
            client.decrypt(CiphertextBlob=blob, KeyId=b.arn)
        assert wrong.value.response["Error"]["Code"] == "IncorrectKeyException"
        # the key id bound into the blob is authenticated: claiming key b inside it does not work
        forged = blob.replace(b"key/a", b"key/b")
        with pytest.raises(ClientError) as tampered:
            client.decrypt(CiphertextBlob=forged)
        assert tampered.value.response["Error"]["Code"] == "InvalidCiphertextException"
        with pytest.raises(ClientError) as context:
            client.decrypt(CiphertextBlob=blob, EncryptionContext={"purpose": "other"})
        assert context.value.response["Error"]["Code"] == "InvalidCiphertextException"
    finally:
        server.stop()


def test_client_refuses_plaintext_next_to_a_recipient_ciphertext(kms: AwsStandIns, wrapped: WrappedKey) -> None:
    def leaky(request: Request) -> Any:
        document = json.loads(request.body)["Recipient"]["AttestationDocument"]
        from enclave_runtime import attest

        claims = attest.verify("aws-nitro", base64.b64decode(document), store=attest.TrustStore(simulation_roots=[kms.sim.root]))
        public = serialization.load_der_public_key(claims.public_key)  # type: ignore[attr-defined]
        envelope = envelope_for_recipient(b"k" * 32, public, claims.public_key)  # type: ignore[arg-type, attr-defined]
        body = {"KeyId": KEY_ARN, "Plaintext": base64.b64encode(b"k" * 32).decode(), "CiphertextForRecipient": base64.b64encode(envelope).decode()}
        return json_response(200, body)

    with Running(leaky) as server:
        client = kms_client(region="eu-west-1", endpoint_url=server.url, access_key_id="AKIAANY0000000000000", secret_access_key="s")
        with pytest.raises(KeyReleaseError, match="returned Plaintext as well: refused"):
            AwsReleaser(client, kms.enclave("approved"), backoff=NO_SLEEP).unwrap(wrapped)


# --- faults: bounded retries ---------------------------------------------------------------------------


def test_throttled_twice_then_released(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, data_key: bytes) -> None:
    slept: list[float] = []
    backoff = retry.Backoff(attempts=ATTEMPTS, sleep=slept.append, jitter=lambda: 1.0)
    releaser = kms.releaser(clinic, "approved")
    releaser.backoff = backoff  # type: ignore[union-attr]
    kms.server.faults.add("status", 429, times=2)
    before = kms.server.faults.served
    assert releaser.unwrap(wrapped) == data_key
    assert kms.server.faults.served - before == 3  # botocore made no retries of its own
    assert slept == [0.05, 0.1]


def test_server_error_forever_gives_up_after_the_bound(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey) -> None:
    kms.server.faults.add("status", 500, times=10)
    before = kms.server.faults.served
    with pytest.raises(KeyReleaseError) as failed:
        kms.releaser(clinic, "approved").unwrap(wrapped)
    assert kms.server.faults.served - before == ATTEMPTS
    assert failed.value.service == "AWS KMS" and failed.value.status == 500 and not failed.value.retryable
    assert str(failed.value).startswith(f"AWS KMS: gave up after {ATTEMPTS} attempts; last: ")


def test_slow_answer_is_retried_then_released(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, data_key: bytes) -> None:
    kms.server.faults.add("delay", 0.8)
    before = kms.server.faults.served
    assert kms.releaser(clinic, "approved").unwrap(wrapped) == data_key
    assert kms.server.faults.served - before == 2


def test_slow_answers_forever_give_a_clear_timeout(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey) -> None:
    kms.server.faults.add("delay", 0.8, times=ATTEMPTS)
    with pytest.raises(KeyReleaseError) as failed:
        kms.releaser(clinic, "approved").unwrap(wrapped)
    assert failed.value.reason.startswith(f"gave up after {ATTEMPTS} attempts; last: timed out: Read timeout on endpoint URL")


def test_dropped_connection_is_retried_then_released(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey, data_key: bytes) -> None:
    kms.server.faults.add("drop")
    before = kms.server.faults.served
    assert kms.releaser(clinic, "approved").unwrap(wrapped) == data_key
    assert kms.server.faults.served - before == 2


def test_dropped_connections_forever_give_a_clear_error(kms: AwsStandIns, clinic: PartyKey, wrapped: WrappedKey) -> None:
    kms.server.faults.add("drop", times=ATTEMPTS)
    with pytest.raises(KeyReleaseError) as failed:
        kms.releaser(clinic, "approved").unwrap(wrapped)
    assert failed.value.reason.startswith(f"gave up after {ATTEMPTS} attempts; last: connection failed: ")


def test_wrapper_retries_throttling_too(kms: AwsStandIns, clinic: PartyKey) -> None:
    kms.server.faults.add("status", 429)
    wrapper = kms.wrapper(clinic)
    assert isinstance(wrapper, AwsWrapper)
    assert wrapper.wrap(b"\x01" * 32).key_id == KEY_ARN


# --- the released key stays in memory -------------------------------------------------------------------


def test_released_key_is_not_written_to_disk(
    kms: AwsStandIns, clinic: PartyKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HOME", "TMPDIR", "TMP", "TEMP"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    secret = os.urandom(32)
    wrapped = kms.wrapper(clinic).wrap(secret)
    assert kms.releaser(clinic, "approved").unwrap(wrapped) == secret
    forms = (secret, secret.hex().encode(), base64.b64encode(secret))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(form in content for form in forms), path


# --- the CMS KMS answers with ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recipient() -> tuple[rsa.RSAPrivateKey, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    spki = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, spki


def _envelope(recipient: tuple[rsa.RSAPrivateKey, bytes], plaintext: bytes = b"D" * 32) -> bytes:
    private, spki = recipient
    return envelope_for_recipient(plaintext, private.public_key(), spki)


def _to_ber_indefinite(der: bytes) -> bytes:
    """Re-encode DER as KMS sends it: every constructed value with indefinite length, and the
    encrypted content ([0], the only primitive [0] of 48+ bytes, a multiple of 16) as a constructed
    string of OCTET STRING chunks. Single-byte tags only (all this structure has)."""

    def walk(data: bytes) -> bytes:
        out, offset = b"", 0
        while offset < len(data):
            tag = data[offset]
            length, offset = data[offset + 1], offset + 2
            if length & 0x80:
                count = length & 0x7F
                length, offset = int.from_bytes(data[offset : offset + count], "big"), offset + count
            value, offset = data[offset : offset + length], offset + length
            if tag & 0x20:
                out += bytes([tag, 0x80]) + walk(value) + b"\x00\x00"
            elif tag == 0x80 and len(value) >= 48 and len(value) % 16 == 0:
                chunks = b"".join(bytes([0x04, len(value[i : i + 16])]) + value[i : i + 16] for i in range(0, len(value), 16))
                out += b"\xa0\x80" + chunks + b"\x00\x00"
            else:
                out += bytes([tag]) + _length(len(value)) + value
        return out

    return walk(der)


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def test_cms_layout_is_what_kms_sends(recipient: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    info = cms.ContentInfo.load(_envelope(recipient))
    enveloped = info["content"]
    ktri = enveloped["recipient_infos"][0].chosen
    params = ktri["key_encryption_algorithm"]["parameters"]
    content = enveloped["encrypted_content_info"]
    assert info["content_type"].dotted == "1.2.840.113549.1.7.3"
    assert (enveloped["version"].native, ktri["version"].native, ktri["rid"].name) == ("v2", "v2", "subject_key_identifier")
    assert len(ktri["rid"].chosen.native) == 32
    assert ktri["key_encryption_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.7"
    assert (params["hash_algorithm"]["algorithm"].native, params["mask_gen_algorithm"]["parameters"]["algorithm"].native) == ("sha256", "sha256")
    assert len(ktri["encrypted_key"].native) == 256
    assert content["content_encryption_algorithm"]["algorithm"].dotted == "2.16.840.1.101.3.4.1.42"
    assert len(content["content_encryption_algorithm"]["parameters"].native) == 16
    assert len(content["encrypted_content"].native) == 48  # 32 bytes + a full PKCS#7 block


def test_cms_round_trip_der_and_ber(recipient: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    der = _envelope(recipient, b"exact data key..................")
    ber = _to_ber_indefinite(der)
    assert ber != der and b"\x30\x80" in ber and b"\xa0\x80\x04\x10" in ber
    assert open_recipient_ciphertext(der, recipient[0]) == b"exact data key.................."
    assert open_recipient_ciphertext(ber, recipient[0]) == b"exact data key.................."


def _mutate(envelope: bytes, change: Any) -> bytes:
    info = cms.ContentInfo.load(envelope)
    change(info)
    return info.dump(force=True)


def _wrong_key_algorithm(info: cms.ContentInfo) -> None:
    ktri = info["content"]["recipient_infos"][0].chosen
    ktri["key_encryption_algorithm"] = cms.KeyEncryptionAlgorithm({"algorithm": "rsaes_pkcs1v15"})


def _wrong_content_algorithm(info: cms.ContentInfo) -> None:
    content = info["content"]["encrypted_content_info"]
    iv = content["content_encryption_algorithm"]["parameters"].native
    content["content_encryption_algorithm"] = {"algorithm": "aes128_cbc", "parameters": iv}


def _sha1_oaep(info: cms.ContentInfo) -> None:
    ktri = info["content"]["recipient_infos"][0].chosen
    ktri["key_encryption_algorithm"] = cms.KeyEncryptionAlgorithm(
        {
            "algorithm": "rsaes_oaep",
            "parameters": {"hash_algorithm": {"algorithm": "sha1"}, "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}}},
        }
    )


def _version_zero(info: cms.ContentInfo) -> None:
    info["content"]["version"] = "v0"


def _issuer_serial(info: cms.ContentInfo) -> None:
    ktri = info["content"]["recipient_infos"][0].chosen
    ktri["version"] = "v0"


def _two_recipients(info: cms.ContentInfo) -> None:
    recipients = info["content"]["recipient_infos"]
    info["content"]["recipient_infos"] = [recipients[0], recipients[0]]


def _short_iv(info: cms.ContentInfo) -> None:
    content = info["content"]["encrypted_content_info"]
    content["content_encryption_algorithm"] = {"algorithm": "aes256_cbc", "parameters": b"\x00" * 8}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_wrong_key_algorithm, "keyEncryptionAlgorithm is 1.2.840.113549.1.1.1, expected rsaesOaep 1.2.840.113549.1.1.7"),
        (_wrong_content_algorithm, "contentEncryptionAlgorithm is 2.16.840.1.101.3.4.1.2, expected aes-256-cbc 2.16.840.1.101.3.4.1.42"),
        (_sha1_oaep, "RSAES-OAEP parameters are hash sha1, mask mgf1(sha256); expected sha256, mgf1(sha256)"),
        (_version_zero, "EnvelopedData.version is v0, expected v2 (KMS sends 2)"),
        (_issuer_serial, "KeyTransRecipientInfo.version is v0, expected v2"),
        (_two_recipients, "EnvelopedData has 2 RecipientInfos, expected exactly 1"),
        (_short_iv, "aes-256-cbc IV is 8 bytes, expected 16"),
    ],
)
def test_tampered_cms_is_refused(recipient: tuple[rsa.RSAPrivateKey, bytes], change: Any, message: str) -> None:
    with pytest.raises(CmsError) as refused:
        open_recipient_ciphertext(_mutate(_envelope(recipient), change), recipient[0])
    assert str(refused.value) == message


def test_truncated_or_foreign_cms_is_refused(recipient: tuple[rsa.RSAPrivateKey, bytes]) -> None:
    envelope = _envelope(recipient)
    with pytest.raises(CmsError, match=r"^not a parsable CMS ContentInfo"):
        open_recipient_ciphertext(envelope[:-20], recipient[0])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(CmsError, match=r"^encryptedKey does not decrypt with this enclave's key"):
        open_recipient_ciphertext(envelope, other)
    flipped = bytearray(envelope)
    flipped[-17] ^= 0x01  # CBC: flips the last plaintext byte, the 0x10 padding becomes 0x11
    with pytest.raises(CmsError, match="invalid PKCS#7 padding"):
        open_recipient_ciphertext(bytes(flipped), recipient[0])
