"""AWS KMS stand-in: enough of the KMS JSON 1.1 API for boto3, deciding with the review's IAM evaluator.

Wire (KMS API reference, https://docs.aws.amazon.com/kms/latest/APIReference/Welcome.html, and a
botocore probe): `POST /`, `Content-Type: application/x-amz-json-1.1`, `X-Amz-Target:
TrentService.<Operation>`, blobs base64 in JSON; errors are HTTP 400 with `{"__type": Name, "message": ...}`
(https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html). Operations: `Encrypt`,
`Decrypt`, `GenerateDataKey` (each with or without `Recipient` where KMS takes it) and `DescribeKey`.

Caller identity: the access key id in the SigV4 `Authorization` header (`Credential=<AKID>/...`) is
looked up in the table the stand-in was given (access key id -> principal ARN); an unknown id is
`UnrecognizedClientException`, a missing header `MissingAuthenticationTokenException`. **The SigV4
signature itself is NOT verified**: the stand-in runs on loopback for tests and the demo, and what it
exists to check is the key policy, not request signing.

Authorization: the key policy the review *recorded* for the key (`standins.stack`), evaluated by
`policies.review.key_release.aws.evaluate` (the evaluator the review simulation uses; there is no
second one here) over the request context AWS documents:
- global keys `aws:PrincipalArn`, `aws:PrincipalAccount`, `kms:CallerAccount` (`aws.base_context`);
- with a `Recipient` whose attestation document verifies (`enclave_runtime.attest.verify("aws-nitro")`
  against the simulation root given plus the pinned AWS root): `kms:RecipientAttestation:ImageSha384`
  = PCR0 and `kms:RecipientAttestation:PCR<n>` for the PCRs in the document ("Condition keys for
  Nitro Enclaves", https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclave.html;
  that KMS exposes every reported PCR, not only 0-4 and 8, is UNCONFIRMED);
  without one, no attestation keys at all.
A refusal names the statement (Sid) and condition that decided, after the message AWS itself gives.

Answers to a `Recipient` request carry `CiphertextForRecipient` (a CMS EnvelopedData built with
asn1crypto: v2, one KTRI v2 with a SubjectKeyIdentifier, RSAES-OAEP SHA-256/MGF1-SHA-256,
AES-256-CBC with a 16-byte IV, as KMS sends it) and no `Plaintext`
(https://docs.aws.amazon.com/kms/latest/developerguide/cryptographic-attestation.html).

Ciphertext blobs are the stand-in's own opaque format, not KMS's: `CCPK | len(arn) | arn | nonce |
AES-256-GCM(plaintext)` under a random key per KMS key, with the key ARN and the encryption context
as associated data, so a blob made under key A never decrypts under key B.

UNCONFIRMED (AWS does not document them): the error KMS returns for an attestation document that does
not verify, or is stale (this stand-in: `ValidationException`), the freshness window on the
document's `timestamp` (this stand-in: `FRESHNESS`), and how KMS derives the SubjectKeyIdentifier
(this stand-in: SHA-256 of the recipient's SubjectPublicKeyInfo, 32 bytes as in a real response).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import re
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final, Mapping, Sequence

from asn1crypto import algos, cms
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from enclave_runtime import attest
from enclave_runtime.keyrelease import KeyReleaseError, WrappedKey, retry
from enclave_runtime.keyrelease import aws as client
from enclave_runtime.keyrelease.aws import AwsReleaser, AwsWrapper, kms_client
from enclave_runtime.simulate.nitro import SimulatedNitro, SimulatedNitroEnclave
from policies.review.key_release import aws as iam
from policies.review.key_release import claims
from policies.review.key_release.simulate import enclave_role_arns
from policies.review.mocks import Recording, unwrapped
from standins.server import Request, Response, Running, json_response, wait_for_interrupt
from standins.stack import PartyKey, StackError, party_keys

TARGET_PREFIX: Final = "TrentService."
CONTENT_TYPE: Final = "application/x-amz-json-1.1"
BLOB_MAGIC: Final = b"CCPK"
FRESHNESS: Final = dt.timedelta(minutes=5)  # UNCONFIRMED: KMS documents no window
MAX_ATTESTATION_DOCUMENT: Final = 262144  # API_RecipientInfo: AttestationDocument 1..262144 bytes
OWNER_STATEMENT: Final = "AllowOwnerEnvelopeEncrypt"
OTHER_COLLABORATION_ROLE: Final = claims.other_role_arn(claims.OTHER_AWS_ACCOUNT, "other-collaboration")
_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/")


class KmsError(Exception):
    """A KMS error answer: `__type` and `message`, HTTP 400 as KMS sends every modeled error."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass
class KmsKey:
    """One symmetric KMS key: its ARN, its recorded key policy, and the stand-in's secret AES key."""

    arn: str
    policy: Mapping[str, Any]
    description: str = ""
    secret: bytes = field(default_factory=lambda: AESGCM.generate_key(bit_length=256), repr=False)
    created: float = field(default_factory=time.time)

    @property
    def key_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _blob(body: Mapping[str, Any], name: str, low: int, high: int, *, required: bool = True) -> bytes | None:
    value = body.get(name)
    if value is None:
        if required:
            raise KmsError("ValidationException", f"1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must not be null")
        return None
    try:
        raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None:
        raise KmsError("SerializationException", f"{name} is not a base64 blob")
    if not low <= len(raw) <= high:
        raise KmsError(
            "ValidationException",
            f"1 validation error detected: Value at '{name}' failed to satisfy constraint: Member must have length between {low} and {high}",
        )
    return raw


def _context_bytes(body: Mapping[str, Any]) -> bytes:
    context = body.get("EncryptionContext") or {}
    if not isinstance(context, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
        raise KmsError("ValidationException", "EncryptionContext must be a map of strings to strings")
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def recipient_ski(spki_der: bytes) -> bytes:
    """SubjectKeyIdentifier of the recipient key: SHA-256 of its DER SPKI (UNCONFIRMED; the SDK ignores it)."""
    return hashlib.sha256(spki_der).digest()


def envelope_for_recipient(plaintext: bytes, public_key: rsa.RSAPublicKey, spki_der: bytes) -> bytes:
    """`CiphertextForRecipient`: CMS ContentInfo(EnvelopedData) as KMS sends it (wire doc §1)."""
    content_key, iv = os.urandom(32), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    encrypted_key = public_key.encrypt(
        content_key, asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v2",
            "rid": cms.RecipientIdentifier({"subject_key_identifier": recipient_ski(spki_der)}),
            "key_encryption_algorithm": cms.KeyEncryptionAlgorithm(
                {
                    "algorithm": "rsaes_oaep",
                    "parameters": algos.RSAESOAEPParams(
                        {
                            "hash_algorithm": {"algorithm": "sha256"},
                            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
                        }
                    ),
                }
            ),
            "encrypted_key": encrypted_key,
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v2",
            "recipient_infos": [cms.RecipientInfo({"ktri": ktri})],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": "aes256_cbc", "parameters": iv},
                "encrypted_content": ciphertext,
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


# --- why a request was refused (the decision itself is iam.evaluate's) ---------------------------------


def _describe_condition(operator: str, key: str, values: Any, context: Mapping[str, Any]) -> str:
    present = next((v for k, v in context.items() if k.lower() == key.lower()), None)
    shown = "absent" if present is None else repr(present)
    return f"{operator} {key} {values!r} (request: {shown})"


def explain(policy: Mapping[str, Any], request: iam.Request, key_arn: str) -> str:
    """Which statement refused (an explicit Deny) or why no Allow statement applied."""
    statements = iam._as_list(policy.get("Statement", []))
    denies = [
        f"{s.get('Sid', f'statement {i}')} ("
        + "; ".join(
            _describe_condition(operator, key, values, request.context)
            for operator, keys in (s.get("Condition") or {}).items()
            for key, values in keys.items()
        )
        + ")"
        for i, s in enumerate(statements)
        if s.get("Effect") == "Deny" and iam.statement_applies(s, request, key_arn)
    ]
    if denies:
        return f"explicit deny in statement {', '.join(denies)}"
    reasons: list[str] = []
    for index, statement in enumerate(statements):
        if statement.get("Effect") != "Allow":
            continue
        sid = statement.get("Sid", f"statement {index}")
        bare = {k: v for k, v in statement.items() if k != "Condition"}
        if not iam.statement_applies(bare, request, key_arn):
            continue
        failed = [
            _describe_condition(operator, key, values, request.context)
            for operator, keys in (statement.get("Condition") or {}).items()
            for key, values in keys.items()
            if not iam.conditions_hold({operator: {key: values}}, request.context)
        ]
        reasons.append(f"{sid} not satisfied: {'; '.join(failed) or 'conditions'}")
    if not reasons:
        return f"no statement allows {request.action} to {request.principal_arn}"
    return "; ".join(reasons)


# --- the service --------------------------------------------------------------------------------------


class KmsStandIn:
    """The request handler: `handle(Request) -> Response` for `standins.server.Running`."""

    def __init__(
        self,
        keys: list[KmsKey],
        principals: Mapping[str, str],
        *,
        simulation_roots: Sequence[x509.Certificate] = (),
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.keys = {key.arn: key for key in keys}
        self.principals = dict(principals)
        self.trust = attest.TrustStore(simulation_roots=simulation_roots)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.decisions: list[dict[str, Any]] = []  # (action, principal, decision, reason): tests read it

    # entry point
    def handle(self, request: Request) -> Response:
        try:
            if request.method != "POST" or request.path.split("?")[0] != "/":
                raise KmsError("UnknownOperationException", f"{request.method} {request.path}: KMS takes POST /", 404)
            target = request.headers.get("x-amz-target", "")
            if not target.startswith(TARGET_PREFIX):
                raise KmsError("UnknownOperationException", f"X-Amz-Target {target!r} is not TrentService.<Operation>")
            operation = target[len(TARGET_PREFIX) :]
            handler = {
                "Encrypt": self._encrypt,
                "Decrypt": self._decrypt,
                "GenerateDataKey": self._generate_data_key,
                "DescribeKey": self._describe_key,
            }.get(operation)
            if handler is None:
                raise KmsError("UnknownOperationException", f"operation {operation!r} is not served by this stand-in")
            principal = self._principal(request)
            try:
                body = json.loads(request.body or b"{}")
            except json.JSONDecodeError as error:
                raise KmsError("SerializationException", f"request body is not JSON: {error}") from None
            if not isinstance(body, dict):
                raise KmsError("SerializationException", "request body is not a JSON object")
            result = handler(principal, body)
            return 200, {"Content-Type": CONTENT_TYPE}, json.dumps(result).encode()
        except KmsError as error:
            return json_response(error.status, {"__type": error.code, "message": error.message}, {"Content-Type": CONTENT_TYPE})

    def _principal(self, request: Request) -> str:
        header = request.headers.get("authorization")
        if not header:
            raise KmsError("MissingAuthenticationTokenException", "Request is missing Authentication Token")
        match = _CREDENTIAL.search(header)
        principal = self.principals.get(match.group(1)) if match else None
        if principal is None:
            raise KmsError("UnrecognizedClientException", "The security token included in the request is invalid.")
        return principal

    def _key(self, key_id: Any) -> KmsKey:
        if not isinstance(key_id, str) or not key_id:
            raise KmsError("ValidationException", "KeyId is required: a key ARN or key id")
        for key in self.keys.values():
            if key_id in (key.arn, key.key_id):
                return key
        raise KmsError("NotFoundException", f"Key '{key_id}' does not exist")

    def _authorize(self, principal: str, action: str, key: KmsKey, attestation: Mapping[str, str] | None) -> None:
        context = iam.base_context(principal) | dict(attestation or {})
        request = iam.Request(principal, action, context)
        try:
            decision = iam.evaluate(key.policy, request, key.arn)
        except iam.PolicyError as error:  # fail closed: a policy the evaluator cannot judge allows nothing
            decision, why = "deny", f"key policy not evaluable: {error}"
        else:
            why = "" if decision == "allow" else explain(key.policy, request, key.arn)
        self.decisions.append({"action": action, "principal": principal, "key": key.arn, "decision": decision, "reason": why})
        if decision != "allow":
            kind = "with an explicit deny in a resource-based policy" if why.startswith("explicit deny") else (
                f"because no resource-based policy allows the {action} action"
            )
            raise KmsError(
                "AccessDeniedException",
                f"User: {principal} is not authorized to perform: {action} on resource: {key.arn} {kind} "
                f"(stand-in: {why})",
            )

    def _recipient(self, body: Mapping[str, Any]) -> tuple[dict[str, str], rsa.RSAPublicKey, bytes] | None:
        """Verify `Recipient`; the attestation condition keys, and the key to encrypt the answer to."""
        recipient = body.get("Recipient")
        if recipient is None:
            return None
        if not isinstance(recipient, dict):
            raise KmsError("ValidationException", "Recipient must be an object {AttestationDocument, KeyEncryptionAlgorithm}")
        algorithm = recipient.get("KeyEncryptionAlgorithm")
        if algorithm != "RSAES_OAEP_SHA_256":
            raise KmsError(
                "ValidationException",
                f"Recipient.KeyEncryptionAlgorithm is {algorithm!r}; the only value is 'RSAES_OAEP_SHA_256'",
            )
        document = _blob(recipient, "AttestationDocument", 1, MAX_ATTESTATION_DOCUMENT)
        now = self.clock()
        try:
            claims_ = attest.verify("aws-nitro", document or b"", store=self.trust, at=now)
        except attest.VerificationError as error:
            raise KmsError("ValidationException", f"Recipient.AttestationDocument does not verify: {error}") from None
        if abs(now - claims_.timestamp) > FRESHNESS:  # type: ignore[attr-defined]
            raise KmsError(
                "ValidationException",
                f"Recipient.AttestationDocument is stale: made {claims_.timestamp.isoformat()}, "  # type: ignore[attr-defined]
                f"more than {FRESHNESS} from {now.isoformat()}",
            )
        spki = claims_.public_key  # type: ignore[attr-defined]
        if not spki:
            raise KmsError("ValidationException", "Recipient.AttestationDocument has no public_key to encrypt the answer to")
        try:
            public = serialization.load_der_public_key(spki)
        except ValueError:
            raise KmsError("ValidationException", "attestation document public_key is not a DER SubjectPublicKeyInfo") from None
        if not isinstance(public, rsa.RSAPublicKey) or public.key_size < 2048:
            raise KmsError("ValidationException", "attestation document public_key must be an RSA key of 2048 bits or more")
        pcrs = claims_.pcrs  # type: ignore[attr-defined]
        # The condition keys as the review's simulation derives them: ImageSha384 (= PCR0) and PCR<n>.
        context = iam.attestation_context({f"pcr{index}": value.hex() for index, value in sorted(pcrs.items())})
        return context, public, spki

    # blobs
    def _seal(self, key: KmsKey, plaintext: bytes, context: bytes) -> bytes:
        arn = key.arn.encode()
        nonce = os.urandom(12)
        header = BLOB_MAGIC + struct.pack(">H", len(arn)) + arn
        return header + nonce + AESGCM(key.secret).encrypt(nonce, plaintext, header + context)

    def _blob_key(self, blob: bytes) -> KmsKey:
        if len(blob) < 6 or not blob.startswith(BLOB_MAGIC):
            raise KmsError("InvalidCiphertextException", "CiphertextBlob was not made by this KMS")
        (size,) = struct.unpack(">H", blob[4:6])
        arn = blob[6 : 6 + size].decode(errors="replace")
        key = self.keys.get(arn)
        if key is None:
            raise KmsError("InvalidCiphertextException", "CiphertextBlob names no key of this KMS")
        return key

    def _open(self, key: KmsKey, blob: bytes, context: bytes) -> bytes:
        arn = key.arn.encode()
        header = BLOB_MAGIC + struct.pack(">H", len(arn)) + arn
        nonce, sealed = blob[len(header) : len(header) + 12], blob[len(header) + 12 :]
        try:
            return AESGCM(key.secret).decrypt(nonce, sealed, header + context)
        except (InvalidTag, ValueError):
            raise KmsError("InvalidCiphertextException", "CiphertextBlob or EncryptionContext does not match") from None

    @staticmethod
    def _algorithm(body: Mapping[str, Any]) -> None:
        algorithm = body.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
        if algorithm != "SYMMETRIC_DEFAULT":
            raise KmsError("InvalidKeyUsageException", f"EncryptionAlgorithm {algorithm!r} is not valid for a symmetric key")

    # operations
    def _encrypt(self, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = self._key(body.get("KeyId"))
        self._algorithm(body)
        plaintext = _blob(body, "Plaintext", 1, 4096)
        context = _context_bytes(body)
        self._authorize(principal, "kms:Encrypt", key, None)
        return {
            "CiphertextBlob": _b64(self._seal(key, plaintext or b"", context)),
            "KeyId": key.arn,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }

    def _decrypt(self, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        blob = _blob(body, "CiphertextBlob", 1, 6144) or b""
        key = self._blob_key(blob)
        if body.get("KeyId") is not None and self._key(body["KeyId"]).arn != key.arn:
            raise KmsError(
                "IncorrectKeyException",
                "The key ID in the request does not identify a KMS key that can perform this operation.",
            )
        self._algorithm(body)
        context = _context_bytes(body)
        recipient = self._recipient(body)
        self._authorize(principal, "kms:Decrypt", key, recipient[0] if recipient else None)
        plaintext = self._open(key, blob, context)
        answer: dict[str, Any] = {"KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
        if recipient is None:
            answer["Plaintext"] = _b64(plaintext)
        else:
            answer["CiphertextForRecipient"] = _b64(envelope_for_recipient(plaintext, recipient[1], recipient[2]))
        return answer

    def _generate_data_key(self, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = self._key(body.get("KeyId"))
        spec, count = body.get("KeySpec"), body.get("NumberOfBytes")
        if (spec is None) == (count is None):
            raise KmsError("ValidationException", "give exactly one of KeySpec (AES_256, AES_128) or NumberOfBytes (1..1024)")
        if spec is not None:
            sizes = {"AES_256": 32, "AES_128": 16}
            if spec not in sizes:
                raise KmsError("ValidationException", f"KeySpec {spec!r} is not AES_256 or AES_128")
            count = sizes[spec]
        if not isinstance(count, int) or not 1 <= count <= 1024:
            raise KmsError("ValidationException", f"NumberOfBytes {count!r} is not 1..1024")
        context = _context_bytes(body)
        recipient = self._recipient(body)
        self._authorize(principal, "kms:GenerateDataKey", key, recipient[0] if recipient else None)
        data_key = os.urandom(count)
        answer: dict[str, Any] = {"CiphertextBlob": _b64(self._seal(key, data_key, context)), "KeyId": key.arn}
        if recipient is None:
            answer["Plaintext"] = _b64(data_key)
        else:
            answer["CiphertextForRecipient"] = _b64(envelope_for_recipient(data_key, recipient[1], recipient[2]))
        return answer

    def _describe_key(self, principal: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = self._key(body.get("KeyId"))
        self._authorize(principal, "kms:DescribeKey", key, None)
        return {
            "KeyMetadata": {
                "AWSAccountId": key.account,
                "KeyId": key.key_id,
                "Arn": key.arn,
                "CreationDate": key.created,
                "Enabled": True,
                "Description": key.description,
                "KeyUsage": "ENCRYPT_DECRYPT",
                "KeyState": "Enabled",
                "Origin": "AWS_KMS",
                "KeyManager": "CUSTOMER",
                "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
                "KeySpec": "SYMMETRIC_DEFAULT",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                "MultiRegion": False,
            }
        }


# --- the demo's stand-ins for one recorded stack ------------------------------------------------------


def access_key_id(principal: str) -> str:
    """A stable, AKIA-shaped access key id per principal (20 characters, as AWS's)."""
    return "AKIA" + hashlib.sha256(principal.encode()).hexdigest()[:16].upper()


def recorded_policy(key: PartyKey) -> dict[str, Any]:
    text = unwrapped(key.resource).get("policy")
    if not isinstance(text, str):
        raise StackError(f"{key.resource.urn}: the recorded key has no `policy` input; rerun the review")
    try:
        policy = json.loads(text)
    except json.JSONDecodeError as error:
        raise StackError(f"{key.resource.urn}: recorded `policy` is not JSON ({error})") from None
    if not isinstance(policy, dict):
        raise StackError(f"{key.resource.urn}: recorded `policy` is not a JSON object")
    return policy


def owner_principal(key: PartyKey, policy: Mapping[str, Any]) -> str:
    """The data owner: the principal of the key policy's `AllowOwnerEnvelopeEncrypt` statement."""
    for statement in iam._as_list(policy.get("Statement", [])):
        if statement.get("Sid") == OWNER_STATEMENT:
            principals = iam._as_list((statement.get("Principal") or {}).get("AWS", []))
            if len(principals) == 1 and isinstance(principals[0], str) and principals[0].startswith("arn:"):
                return principals[0]
            raise StackError(f"{key.resource.urn}: statement {OWNER_STATEMENT} must name one owner role ARN, has {principals!r}")
    raise StackError(
        f"{key.resource.urn}: key policy has no {OWNER_STATEMENT} statement, so no party can wrap a data key "
        "under it; declare the party's dataOwner"
    )


def _key_arn(key: PartyKey) -> str:
    arn = key.resource.outputs.get("arn")
    if not isinstance(arn, str) or not arn.startswith("arn:aws"):
        raise StackError(f"{key.resource.urn}: no recorded `arn` output; rerun the review")
    return arn


class UnattestedProbe:
    """Demo-only (never in an image): plain `Decrypt` (no `Recipient`) with the enclave role's credentials. A correct key
    policy refuses it (`DenyDecryptWithoutAttestation`); if one does not, the demo reports the leak."""

    cloud = "aws"
    attested = False

    def __init__(self, client: Any, *, backoff: retry.Backoff = retry.Backoff()) -> None:
        self._client = client
        self.backoff = backoff

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        client.check_wrapped(wrapped)
        response = retry.call(
            lambda: client.call(
                self._client.decrypt, CiphertextBlob=wrapped.blob, KeyId=wrapped.key_id, EncryptionAlgorithm=client.ALGORITHM
            ),
            self.backoff,
        )
        plaintext = response.get("Plaintext")
        if not isinstance(plaintext, bytes) or not plaintext:
            raise KeyReleaseError(client.SERVICE, "Decrypt returned no Plaintext")
        return plaintext




class AwsStandIns:
    """`standins.cloud.CloudStandIns` for AWS: one KMS stand-in serving every AWS party key of a recording,
    and the simulated Nitro enclave presenting each case.

    Approved PCRs come from the stack's measurements (`settings.collaboration.measurements`, via the same
    `claims.nitro_pcrs` the review simulation uses), never from the key policy, so a policy pinning the
    wrong values refuses the approved enclave.
    """

    cloud = "aws"

    def __init__(
        self,
        recording: Recording,
        settings: Any,
        *,
        backoff: retry.Backoff | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        clock: Callable[[], dt.datetime] | None = None,
        simulation_roots: Sequence[x509.Certificate] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.measurements = settings.collaboration.measurements
        self.sim = SimulatedNitro()
        self.backoff = backoff or retry.Backoff()
        self.timeouts = (connect_timeout, read_timeout)
        self.clock = clock
        self.party_keys = [k for k in party_keys(recording) if k.cloud == "aws"]
        keys: list[KmsKey] = []
        self.owners: dict[str, str] = {}
        for key in self.party_keys:
            policy = recorded_policy(key)
            arn = _key_arn(key)
            keys.append(KmsKey(arn, policy, str(unwrapped(key.resource).get("description") or "")))
            self.owners[key.resource.urn] = owner_principal(key, policy)
        roles = enclave_role_arns(recording)
        if not roles:
            raise StackError("the recording has no enclave-enabled instance role: no workload could ask for a key")
        self.enclave_role = roles[0]
        principals = [self.enclave_role, OTHER_COLLABORATION_ROLE, *self.owners.values()]
        self.credentials = {access_key_id(p): p for p in principals}
        self._secrets = {akid: base64.b64encode(os.urandom(30)).decode() for akid in self.credentials}
        self.service = KmsStandIn(keys, self.credentials, simulation_roots=[self.sim.root, *simulation_roots], clock=clock)
        self.server = Running(self.service.handle, host=host, port=port)
        self.url = self.server.url

    def client(self, principal: str, region: str) -> Any:
        akid = access_key_id(principal)
        if akid not in self.credentials:
            raise KeyError(f"no stand-in credentials for {principal}")
        return kms_client(
            region=region,
            endpoint_url=self.url,
            access_key_id=akid,
            secret_access_key=self._secrets[akid],
            connect_timeout=self.timeouts[0],
            read_timeout=self.timeouts[1],
        )

    def _pcrs(self, variant: str) -> dict[int, str]:
        return {int(name.removeprefix("pcr")): value for name, value in claims.nitro_pcrs(self.measurements, variant).items()}

    def enclave(self, case: str) -> SimulatedNitroEnclave:
        """The simulated enclave presenting `case` (approved, debug, unapproved-image, other-collaboration)."""
        if case in ("approved", "other-collaboration"):
            return SimulatedNitroEnclave(self.sim, self._pcrs("approved"), clock=self.clock)
        if case == "debug":
            return SimulatedNitroEnclave(self.sim, self._pcrs("approved"), debug=True, clock=self.clock)
        if case == "unapproved-image":
            return SimulatedNitroEnclave(self.sim, self._pcrs("other:unapproved-image"), clock=self.clock)
        raise ValueError(f"case {case!r} has no enclave; cases: approved, debug, unapproved-image, other-collaboration")

    def wrapper(self, key: PartyKey) -> AwsWrapper:
        arn = _key_arn(key)
        return AwsWrapper(self.client(self.owners[key.resource.urn], arn.split(":")[3]), arn, backoff=self.backoff)

    def releaser(self, key: PartyKey, case: str) -> AwsReleaser | UnattestedProbe:
        region = _key_arn(key).split(":")[3]
        if case == "unattested":
            return UnattestedProbe(self.client(self.enclave_role, region), backoff=self.backoff)
        principal = OTHER_COLLABORATION_ROLE if case == "other-collaboration" else self.enclave_role
        return AwsReleaser(self.client(principal, region), self.enclave(case), backoff=self.backoff)

    def stop(self) -> None:
        self.server.stop()


def main(argv: list[str] | None = None) -> int:
    """`python -m standins.aws_kms --stack dev`: serve the stack's recorded AWS party keys on loopback."""
    from policies.review import project
    from policies.review.run import REPO_ROOT, ccp_settings
    from standins.stack import load

    parser = argparse.ArgumentParser(prog="python -m standins.aws_kms", description=main.__doc__)
    parser.add_argument("--stack", default="dev", help="stack whose review (out/review-STACK.json) to enforce")
    parser.add_argument("--report", type=Path, help="review report to use instead of out/review-STACK.json")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    args = parser.parse_args(argv)
    try:
        recording = load(args.report or args.stack)
        settings = ccp_settings(project.load(REPO_ROOT, args.stack))
        standins = AwsStandIns(recording, settings, port=args.port)
    except (StackError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"AWS KMS stand-in for stack {args.stack!r}: {standins.url}", flush=True)
    for akid, principal in standins.credentials.items():
        print(f"  access key {akid} (secret: any; signatures are not checked) -> {principal}")
    for key in standins.party_keys:
        print(f"  key {_key_arn(key)} (party {key.party})")
    print(f"  AWS_ENDPOINT_URL_KMS={standins.url}", flush=True)
    try:
        wait_for_interrupt()
    finally:
        standins.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
