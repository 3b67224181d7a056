"""AWS KMS key release to a Nitro enclave: the party wraps with `Encrypt`, the enclave unwraps with an
attested `Decrypt` whose answer only the enclave can open.

How the attested call works (KMS developer guide, "How AWS Nitro Enclaves uses AWS KMS",
https://docs.aws.amazon.com/kms/latest/developerguide/services-nitro-enclaves.html, and API reference
`RecipientInfo`, https://docs.aws.amazon.com/kms/latest/APIReference/API_RecipientInfo.html):

1. The enclave makes a fresh RSA key pair and asks the Nitro Secure Module for an attestation document
   carrying the DER SubjectPublicKeyInfo in `public_key` (as the Nitro Enclaves SDK does:
   aws/aws-nitro-enclaves-sdk-c `source/attestation.c`).
2. `Decrypt(..., Recipient={"AttestationDocument": doc, "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})`:
   KMS checks the document's signature, evaluates the key policy with the document's PCRs as
   `kms:RecipientAttestation:*` condition keys, and answers with `CiphertextForRecipient` (a CMS
   EnvelopedData to that public key) and *no* plaintext.
3. The enclave opens the CMS with its private key, which never leaves its memory.

This client never makes an unattested call on the release path, refuses a response that carries
`Plaintext` next to a recipient ciphertext, and checks the CMS as the SDK's `source/cms.c` does
(EnvelopedData v2, one KeyTransRecipientInfo v2 with a SubjectKeyIdentifier, AES-256-CBC) plus the
key-transport algorithm (RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label), which the SDK assumes.

botocore's own retries are switched off (`total_max_attempts=1`; note `max_attempts` counts *retries*
in botocore, so `max_attempts=1` would still retry once): `retry.call` is the one bounded loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Final, Iterator, Mapping, Protocol

from asn1crypto import cms
from asn1crypto import parser as asn1_parser
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from . import retry
from .base import KeyReleaseError, WrappedKey

SERVICE: Final = "AWS KMS"
ALGORITHM: Final = "SYMMETRIC_DEFAULT"
KEY_ENCRYPTION_ALGORITHM: Final = "RSAES_OAEP_SHA_256"  # the only value KMS accepts (API_RecipientInfo)
RSA_BITS: Final = 2048  # what the Nitro Enclaves SDK generates (source/attestation.c)
MAX_PLAINTEXT: Final = 4096  # Encrypt takes 1..4096 bytes (https://docs.aws.amazon.com/kms/latest/APIReference/API_Encrypt.html)
CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0

# Error codes worth another attempt: throttling and KMS's own transient failures
# (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html and the per-operation errors
# KMSInternalException / DependencyTimeoutException, e.g. API_Decrypt.html#API_Decrypt_Errors).
RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSInternalException",
        "DependencyTimeoutException",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class EvidenceSource(Protocol):
    """Where the releaser gets a Nitro attestation document binding its ephemeral public key."""

    def attest(self, public_key: bytes) -> bytes: ...


def nsm_evidence(device: Path | str | None = None) -> EvidenceSource:
    """The real evidence source inside a Nitro Enclave: /dev/nsm with `public_key` set."""
    from enclave_runtime.evidence import nitro_nsm

    return nitro_nsm.NitroNsm(device if device is not None else nitro_nsm.DEVICE)


def kms_client(
    *,
    region: str,
    endpoint_url: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> Any:
    """A boto3 KMS client with botocore's retries off and short timeouts (`retry.call` retries).

    Without explicit keys boto3's default chain applies (inside an enclave: credentials the parent
    passes in; see the SDK's kmstool example)."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    return boto3.client(
        "kms",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=config,
    )


def call(operation: Callable[..., Mapping[str, Any]], **kwargs: Any) -> Mapping[str, Any]:
    """One KMS call; botocore errors become `KeyReleaseError`, retryable where a retry can help."""
    from botocore import exceptions as bx

    try:
        return operation(**kwargs)
    except bx.ClientError as error:
        details = error.response.get("Error", {}) or {}
        code = str(details.get("Code") or "")
        message = str(details.get("Message") or "") or "(no message)"
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = code in RETRYABLE_CODES or status == 429 or (isinstance(status, int) and status >= 500)
        label = code or f"HTTP {status}"
        raise KeyReleaseError(SERVICE, f"{label}: {message}", retryable=retryable, status=status) from None
    except (bx.ReadTimeoutError, bx.ConnectTimeoutError) as error:
        raise KeyReleaseError(SERVICE, f"timed out: {error}", retryable=True) from None
    except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.ConnectionError, bx.HTTPClientError) as error:
        raise KeyReleaseError(SERVICE, f"connection failed: {error}", retryable=True) from None
    except bx.NoCredentialsError:
        raise KeyReleaseError(
            SERVICE, "no AWS credentials: give the client an access key (or the enclave's role credentials)"
        ) from None
    except bx.NoRegionError:
        raise KeyReleaseError(SERVICE, "no AWS region: pass region= (the KMS key's region)") from None
    except bx.ParamValidationError as error:
        raise KeyReleaseError(SERVICE, f"invalid request: {error}") from None


def _key_matches(returned: Any, expected: str) -> bool:
    """KMS answers with the key ARN; a configured bare key id matches the ARN's `key/<id>` suffix."""
    if not isinstance(returned, str) or not returned:
        return False
    return returned == expected or (not expected.startswith("arn:") and returned.endswith(f":key/{expected}"))


class AwsWrapper:
    """Party side: `Encrypt` under the party's KMS key with the party's own (owner) credentials.

    Wrapping returns no plaintext, so it needs no attestation; the key policy lets the owner only
    encrypt (statement `AllowOwnerEnvelopeEncrypt`)."""

    cloud = "aws"

    def __init__(self, client: Any, key_arn: str, *, backoff: retry.Backoff = retry.Backoff()) -> None:
        if not key_arn:
            raise ValueError("AwsWrapper needs the KMS key ARN (the key resource's `arn` output)")
        self._client = client
        self.key_arn = key_arn
        self.backoff = backoff

    def wrap(self, data_key: bytes) -> WrappedKey:
        if not 1 <= len(data_key) <= MAX_PLAINTEXT:
            raise ValueError(f"a data key is 1..{MAX_PLAINTEXT} bytes for KMS Encrypt, got {len(data_key)}")
        response = retry.call(
            lambda: call(
                self._client.encrypt, KeyId=self.key_arn, Plaintext=bytes(data_key), EncryptionAlgorithm=ALGORITHM
            ),
            self.backoff,
        )
        blob = response.get("CiphertextBlob")
        if not isinstance(blob, bytes) or not blob:
            raise KeyReleaseError(SERVICE, "Encrypt response has no CiphertextBlob")
        if not _key_matches(response.get("KeyId"), self.key_arn):
            raise KeyReleaseError(
                SERVICE, f"Encrypt answered for key {response.get('KeyId')!r}, not the requested {self.key_arn!r}"
            )
        return WrappedKey("aws", str(response["KeyId"]), ALGORITHM, blob)


class AwsReleaser:
    """Workload side: attested `Decrypt`, one fresh RSA-2048 key and attestation document per attempt.

    `evidence` is required: there is no unattested mode here (the demo's deliberately unattested caller
    is `standins.aws_kms.UnattestedProbe`, which is not part of this package)."""

    cloud = "aws"

    def __init__(self, client: Any, evidence: EvidenceSource, *, backoff: retry.Backoff = retry.Backoff()) -> None:
        if evidence is None or not callable(getattr(evidence, "attest", None)):
            raise TypeError("AwsReleaser needs an evidence source with attest(public_key) -> attestation document")
        self._client = client
        self._evidence = evidence
        self.backoff = backoff

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        check_wrapped(wrapped)
        return retry.call(lambda: self._attempt(wrapped), self.backoff)

    def _attempt(self, wrapped: WrappedKey) -> bytes:
        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        from enclave_runtime.evidence.base import EvidenceError

        try:
            document = self._evidence.attest(spki)
        except EvidenceError as error:
            raise KeyReleaseError(SERVICE, f"no attestation document, so no request was made: {error}") from None
        response = call(
            self._client.decrypt,
            CiphertextBlob=wrapped.blob,
            KeyId=wrapped.key_id,
            EncryptionAlgorithm=ALGORITHM,
            Recipient={"AttestationDocument": document, "KeyEncryptionAlgorithm": KEY_ENCRYPTION_ALGORITHM},
        )
        if response.get("Plaintext"):
            # KMS documents Plaintext as null for a Recipient request; a service that also returns it
            # has let the key out of the enclave's custody, so the answer is not used.
            raise KeyReleaseError(
                SERVICE, "Decrypt with Recipient returned Plaintext as well: refused (it must be absent or empty)"
            )
        if not _key_matches(response.get("KeyId"), wrapped.key_id):
            raise KeyReleaseError(
                SERVICE, f"Decrypt answered for key {response.get('KeyId')!r}, not the requested {wrapped.key_id!r}"
            )
        envelope = response.get("CiphertextForRecipient")
        if not isinstance(envelope, bytes) or not envelope:
            raise KeyReleaseError(SERVICE, "Decrypt with Recipient returned no CiphertextForRecipient")
        try:
            return open_recipient_ciphertext(envelope, private)
        except CmsError as error:
            raise KeyReleaseError(SERVICE, f"CiphertextForRecipient refused: {error}") from None


def check_wrapped(wrapped: WrappedKey) -> None:
    if wrapped.cloud != "aws":
        raise KeyReleaseError(SERVICE, f"wrapped key is for cloud {wrapped.cloud!r}, not 'aws'")
    if wrapped.algorithm != ALGORITHM:
        raise KeyReleaseError(
            SERVICE, f"wrapped key algorithm is {wrapped.algorithm!r}; this client only unwraps {ALGORITHM}"
        )


# --- CiphertextForRecipient: CMS EnvelopedData (RFC 5652) -----------------------------------------

AES_BLOCK: Final = 16


class CmsError(ValueError):
    """The recipient ciphertext is not the CMS KMS sends; the message names the field and value."""


def open_recipient_ciphertext(data: bytes, private_key: rsa.RSAPrivateKey) -> bytes:
    """The plaintext inside KMS's `CiphertextForRecipient` (BER or DER), or `CmsError`.

    Layout (aws-nitro-enclaves-sdk-c `source/cms.c:aws_cms_parse_enveloped_data`, and a real dump):
    ContentInfo{envelopedData, EnvelopedData{v2, {KTRI{v2, [0] SKI, rsaesOaep(sha256, mgf1-sha256),
    encryptedKey}}, {data, aes256-CBC(IV 16), [0] ciphertext}}}. Anything else is refused.
    """
    try:
        info = cms.ContentInfo.load(definite_lengths(data))
        content_type = info["content_type"].native
        if content_type != "enveloped_data":
            raise CmsError(f"ContentInfo.contentType is {info['content_type'].dotted} ({content_type}), expected envelopedData 1.2.840.113549.1.7.3")
        enveloped = info["content"]
        version = enveloped["version"].native
        if version != "v2":
            raise CmsError(f"EnvelopedData.version is {version}, expected v2 (KMS sends 2)")
        if enveloped["originator_info"].native is not None:
            raise CmsError("EnvelopedData has originatorInfo; KMS sends none")
        if enveloped["unprotected_attrs"].native is not None:
            raise CmsError("EnvelopedData has unprotectedAttrs; KMS sends none")
        recipients = enveloped["recipient_infos"]
        if len(recipients) != 1:
            raise CmsError(f"EnvelopedData has {len(recipients)} RecipientInfos, expected exactly 1")
        recipient = recipients[0]
        if recipient.name != "ktri":
            raise CmsError(f"RecipientInfo is {recipient.name}, expected KeyTransRecipientInfo (ktri)")
        ktri = recipient.chosen
        if ktri["version"].native != "v2":
            raise CmsError(f"KeyTransRecipientInfo.version is {ktri['version'].native}, expected v2")
        if ktri["rid"].name != "subject_key_identifier":
            raise CmsError(f"KeyTransRecipientInfo.rid is {ktri['rid'].name}, expected subjectKeyIdentifier [0]")
        _check_oaep(ktri["key_encryption_algorithm"])
        encrypted_key = ktri["encrypted_key"].native
        modulus_bytes = (private_key.key_size + 7) // 8
        if len(encrypted_key) != modulus_bytes:
            raise CmsError(f"encryptedKey is {len(encrypted_key)} bytes, expected the modulus size {modulus_bytes}")
        content = enveloped["encrypted_content_info"]
        if content["content_type"].native != "data":
            raise CmsError(f"EncryptedContentInfo.contentType is {content['content_type'].dotted}, expected data 1.2.840.113549.1.7.1")
        algorithm = content["content_encryption_algorithm"]
        if algorithm["algorithm"].dotted != "2.16.840.1.101.3.4.1.42":
            raise CmsError(
                f"contentEncryptionAlgorithm is {algorithm['algorithm'].dotted}, expected aes-256-cbc 2.16.840.1.101.3.4.1.42"
            )
        iv = algorithm["parameters"].native
        if not isinstance(iv, bytes) or len(iv) != AES_BLOCK:
            raise CmsError(f"aes-256-cbc IV is {len(iv) if isinstance(iv, bytes) else iv!r} bytes, expected {AES_BLOCK}")
        ciphertext = content["encrypted_content"].native
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise CmsError(f"not a parsable CMS ContentInfo ({len(data)} bytes): {error}") from None
    if not isinstance(ciphertext, bytes) or not ciphertext or len(ciphertext) % AES_BLOCK:
        size = len(ciphertext) if isinstance(ciphertext, bytes) else "no"
        raise CmsError(f"encryptedContent is {size} bytes, expected a non-empty multiple of {AES_BLOCK}")
    try:
        content_key = private_key.decrypt(
            encrypted_key,
            asym_padding.OAEP(mgf=asym_padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
    except ValueError:
        raise CmsError("encryptedKey does not decrypt with this enclave's key (RSA-OAEP SHA-256)") from None
    if len(content_key) != 32:
        raise CmsError(f"content-encryption key is {len(content_key)} bytes, expected 32 for AES-256")
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise CmsError("encryptedContent has invalid PKCS#7 padding after AES-256-CBC") from None


def definite_lengths(data: bytes) -> bytes:
    """The same BER with every length definite and every chunked OCTET STRING in one piece, using
    asn1crypto's own parser and emitter.

    KMS sends indefinite lengths and may chunk the encrypted content into a constructed string (wire
    doc §1; the SDK's `cms.c` takes a primitive `[0]` or constructed OCTET STRING chunks). asn1crypto
    1.5.1 parses neither an indefinite-length CHOICE alternative (the KeyTransRecipientInfo inside
    RecipientInfo) nor a constructed implicit `[0]` OCTET STRING, so both are normalised first. A
    constructed value whose children are all OCTET STRINGs is taken for a chunked string (no other
    value of this CMS has that shape; a wrong guess fails the field checks, it admits nothing).
    """
    out = b""
    for class_, method, tag, contents in _elements(data):
        if method == 1:
            children = list(_elements(contents))
            if children and all(child[:3] == (0, 0, 4) for child in children):  # chunks: universal primitive OCTET STRING
                out += asn1_parser.emit(class_, 0, tag, b"".join(child[3] for child in children))
                continue
            contents = definite_lengths(contents)
        out += asn1_parser.emit(class_, method, tag, contents)
    return out


def _elements(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(class, method, tag, contents) of each TLV in `data`, in order."""
    offset = 0
    while offset < len(data):
        size = asn1_parser.peek(data[offset:])
        class_, method, tag, _header, contents, _trailer = asn1_parser.parse(data[offset : offset + size], strict=True)
        yield class_, method, tag, contents
        offset += size


def _check_oaep(algorithm: Any) -> None:
    """rsaesOaep 1.2.840.113549.1.1.7 with SHA-256, MGF1(SHA-256) and the empty label (RFC 8017 A.2.1)."""
    oid = algorithm["algorithm"].dotted
    if oid != "1.2.840.113549.1.1.7":
        raise CmsError(f"keyEncryptionAlgorithm is {oid}, expected rsaesOaep 1.2.840.113549.1.1.7")
    params = algorithm["parameters"]
    digest = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]["algorithm"].native
    mgf_digest = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
    label = params["p_source_algorithm"]["parameters"].native
    if (digest, mgf, mgf_digest) != ("sha256", "mgf1", "sha256"):
        raise CmsError(
            f"RSAES-OAEP parameters are hash {digest}, mask {mgf}({mgf_digest}); expected sha256, mgf1(sha256)"
        )
    if label not in (b"", None):
        raise CmsError("RSAES-OAEP label is not empty; KMS uses none")


__all__ = [
    "AwsReleaser",
    "AwsWrapper",
    "CmsError",
    "call",
    "check_wrapped",
    "EvidenceSource",
    "nsm_evidence",
    "kms_client",
    "open_recipient_ciphertext",
]
