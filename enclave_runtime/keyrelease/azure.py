"""Azure: a party wraps under its Key Vault key; the workload gets the key back by secure key release (SKR).

Party side (`AzureWrapper`): `KeyClient.get_key` fetches the public half of the party's exportable
RSA-HSM key and the data key is wrapped *locally* with RSA-OAEP-256 (SHA-256, MGF1-SHA-256, the
algorithm Key Vault names `RSA-OAEP-256`, https://learn.microsoft.com/azure/key-vault/keys/about-keys-details).
Not `CryptographyClient.wrap_key`: that sends the plaintext data key to the vault, and wrapping
needs only the public key, so the data key never leaves the party's process.

Workload side (`AzureReleaser`), the flow of Microsoft's SKR sidecar for confidential containers
(https://github.com/microsoft/confidential-sidecar-containers, pkg/skr, pkg/attest/maa.go):
1. a fresh RSA-2048 key per call; its public JWK is the runtime data, SHA-256(runtime data) the
   SNP REPORT_DATA, so MAA's token can only name a key this TEE holds;
2. `POST {maa}/attest/SevSnpVm?api-version=2022-08-01` with the report and runtime data
   (https://learn.microsoft.com/rest/api/attestation/attestation/attest-sev-snp-vm) -> MAA token;
3. `KeyClient.release_key(name, token)` (https://learn.microsoft.com/rest/api/keyvault/keys/release/release);
   Key Vault evaluates the key's release policy over the token and wraps the key to the runtime key;
4. the JWS answer is checked (signature by its x5c leaf, leaf chained to a trusted root and named
   for the vault), `key_hsm` unwrapped (RSA-OAEP, then RFC 5649 AES key wrap with padding), and the
   released PKCS#8 private key unwraps the data key (RSA-OAEP-256).
There is no unattested path: without evidence there is no token, without a token no release.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding
from cryptography.x509.oid import ExtensionOID

from ..evidence.base import Evidence
from . import retry
from .base import Cloud, KeyReleaseError, WrappedKey

KEY_VAULT: Final = "Azure Key Vault"
MAA: Final = "Microsoft Azure Attestation"
ALGORITHM: Final = "RSA-OAEP-256"
API_VERSION: Final = "7.3"  # the first Key Vault API with `release` (wire doc §2 iii: pin it, no negotiation)
MAA_API_VERSION: Final = "2022-08-01"
# The kid Key Vault wraps released keys to (x-ms-runtime.keys[], "Guest attestation for confidential VMs",
# https://learn.microsoft.com/azure/confidential-computing/guest-attestation-confidential-virtual-machines-design).
RUNTIME_KEY_ID: Final = "TpmEphemeralEncryptionKey"
EPHEMERAL_BITS: Final = 2048  # the SKR sidecar's RSASize (pkg/skr/akv.go)
DATA_KEY_SIZE: Final = 32
# `enc` of the release request -> OAEP hash of the key-encryption key, as the SKR sidecar unwraps
# (pkg/skr/akv.go rsaAESKeyUnwrap: "CKM_RSA_AES_KEY_WRAP relies on SHA1 hash").
# UNCONFIRMED by Microsoft's documentation: the wire doc (§2 ii) found it only in samples and the sidecar.
ENC_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "CKM_RSA_AES_KEY_WRAP": hashes.SHA1,
    "RSA_AES_KEY_WRAP_256": hashes.SHA256,
    "RSA_AES_KEY_WRAP_384": hashes.SHA384,
}
RELEASE_ENC: Final = "CKM_RSA_AES_KEY_WRAP"
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})


class SnpEvidenceSource(Protocol):
    """Where the workload's SEV-SNP report comes from (the UVM's /dev/sev-guest or configfs-tsm, or a simulation)."""

    def snp_report(self, report_data: bytes) -> Evidence: ...


# ---------------------------------------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    """Padded or unpadded base64url (Key Vault writes it unpadded, the SKR sidecar padded)."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is {type(text).__name__}, not a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError(f"{what} is not base64url: {error}") from None


def _int_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def runtime_data(public: rsa.RSAPublicKey) -> bytes:
    """The runtime data the workload attests: a JWK set holding its wrapping key (compact JSON, the exact bytes hashed)."""
    numbers = public.public_numbers()
    document = {
        "keys": [
            {
                "kid": RUNTIME_KEY_ID,
                "kty": "RSA",
                "n": _int_b64url(numbers.n),
                "e": _int_b64url(numbers.e),
                "key_ops": ["encrypt"],
            }
        ]
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def parse_key_id(key_id: str) -> tuple[str, str, str | None]:
    """`https://<vault>/keys/<name>[/<version>]` -> (vault URL, name, version); anything else is refused."""
    parts = urlsplit(key_id)
    segments = [s for s in parts.path.split("/") if s]
    if parts.scheme != "https" or not parts.netloc or len(segments) not in (2, 3) or segments[0] != "keys":
        raise KeyReleaseError(
            KEY_VAULT,
            f"key id {key_id!r} is not https://<vault>.vault.azure.net/keys/<name>[/<version>] "
            "(use the key's `keyUri`/`kid`, as `KeyClient.get_key` returns it)",
        )
    return f"https://{parts.netloc}", segments[1], segments[2] if len(segments) == 3 else None


def _endpoint(vault_url: str, endpoint: str | None) -> str:
    """The URL to connect to: the vault itself, or a stand-in's loopback URL given for it. TLS only."""
    url = (endpoint or vault_url).rstrip("/")
    if urlsplit(url).scheme != "https":
        # azure-keyvault-keys refuses bearer auth over plain HTTP (ServiceRequestError, wire doc §2 iii);
        # say so here, once, rather than retrying a configuration error.
        raise KeyReleaseError(KEY_VAULT, f"endpoint {url!r} is not https: Key Vault and its bearer tokens need TLS")
    return url


def _key_client(url: str, credential: Any, connection_verify: str | Path | None, timeout: float) -> Any:
    from azure.keyvault.keys import KeyClient

    kwargs: dict[str, Any] = {
        "api_version": API_VERSION,
        # Our retries are retry.call's (bounded, jittered, counted); azure-core's own would multiply them.
        "retry_total": 0,
        "connection_timeout": timeout,
        "read_timeout": timeout,
    }
    if connection_verify is not None:
        kwargs["connection_verify"] = str(connection_verify)
    if urlsplit(url).hostname in {"localhost", "127.0.0.1", "::1"}:
        # A loopback stand-in can never be under the challenge's resource domain (wire doc §2 iii).
        kwargs["verify_challenge_resource"] = False
    return KeyClient(url, credential, **kwargs)


def key_vault_error(error: Exception) -> KeyReleaseError:
    """An azure-core exception as a `KeyReleaseError` carrying Key Vault's own error code and message."""
    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, HttpResponseError):
        status = error.status_code
        code = getattr(error.error, "code", None) if getattr(error, "error", None) is not None else None
        message = getattr(error.error, "message", None) if getattr(error, "error", None) is not None else None
        reason = f"HTTP {status}" + (f" ({code})" if code else "") + f": {message or error.reason or error.message}"
        return KeyReleaseError(KEY_VAULT, reason, retryable=status in RETRYABLE_STATUS, status=status)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return KeyReleaseError(KEY_VAULT, f"no answer: {type(error).__name__}: {error}", retryable=True)
    return KeyReleaseError(KEY_VAULT, f"{type(error).__name__}: {error}")


def _call_key_vault(operation: Any) -> Any:
    from azure.core.exceptions import AzureError

    try:
        return operation()
    except AzureError as error:
        raise key_vault_error(error) from None


# ---------------------------------------------------------------------------------------------- party side


class AzureWrapper:
    """Wraps data keys under a party's Key Vault RSA key with the party's own credential."""

    cloud: Cloud = "azure"

    def __init__(
        self,
        key_url: str,
        credential: Any,
        *,
        endpoint: str | None = None,
        connection_verify: str | Path | None = None,
        backoff: retry.Backoff = retry.Backoff(),
        timeout: float = 10.0,
    ) -> None:
        self.key_url = key_url
        vault, self.name, self.version = parse_key_id(key_url)
        self._client = _key_client(_endpoint(vault, endpoint), credential, connection_verify, timeout)
        self._backoff = backoff

    def wrap(self, data_key: bytes) -> WrappedKey:
        if len(data_key) != DATA_KEY_SIZE:
            raise ValueError(f"data key is {len(data_key)} bytes; wrap a {DATA_KEY_SIZE}-byte AES-256 key")
        key = retry.call(
            lambda: _call_key_vault(lambda: self._client.get_key(self.name, self.version)), self._backoff
        )
        jwk = key.key
        kty = getattr(jwk.kty, "value", jwk.kty)
        if kty not in {"RSA", "RSA-HSM"} or not jwk.n or not jwk.e:
            raise KeyReleaseError(KEY_VAULT, f"key {key.id} is {kty}, not an RSA key: the party key must be RSA-HSM")
        public = rsa.RSAPublicNumbers(int.from_bytes(jwk.e, "big"), int.from_bytes(jwk.n, "big")).public_key()
        blob = public.encrypt(data_key, _oaep(hashes.SHA256))
        # The versioned kid: the release must be for the key version that wrapped, not a later rotation.
        return WrappedKey("azure", str(key.id), ALGORITHM, blob)


def _oaep(hash_type: type[hashes.HashAlgorithm]) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hash_type()), algorithm=hash_type(), label=None)


# ---------------------------------------------------------------------------------------------- workload side


class AzureReleaser:
    """Releases a party's Key Vault key into this TEE by SKR and unwraps data keys with it.

    `attestation_url` is where MAA is reached (the attestation provider's attestUri, or a stand-in);
    `endpoint` replaces the vault URL of the key id for connections (a stand-in); `connection_verify`
    is a CA bundle for both; `jws_roots` are the roots the release answer's signing certificate must
    chain to (default: the certificates of `connection_verify`).
    """

    cloud: Cloud = "azure"

    def __init__(
        self,
        *,
        evidence: SnpEvidenceSource,
        attestation_url: str,
        credential: Any,
        endpoint: str | None = None,
        connection_verify: str | Path | None = None,
        jws_roots: Sequence[x509.Certificate] | None = None,
        backoff: retry.Backoff = retry.Backoff(),
        timeout: float = 10.0,
    ) -> None:
        if urlsplit(attestation_url).scheme != "https":
            raise KeyReleaseError(MAA, f"attestation URL {attestation_url!r} is not https")
        self._evidence = evidence
        self._maa = attestation_url.rstrip("/")
        self._credential = credential
        self._endpoint = endpoint
        self._verify = connection_verify
        self._backoff = backoff
        self._timeout = timeout
        if jws_roots is None:
            jws_roots = _load_roots(connection_verify)
        self._roots = list(jws_roots)
        self._clients: dict[str, Any] = {}

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.cloud != "azure" or wrapped.algorithm != ALGORITHM:
            raise KeyReleaseError(
                KEY_VAULT, f"wrapped key is {wrapped.cloud}/{wrapped.algorithm}; this client unwraps azure/{ALGORITHM}"
            )
        vault, name, version = parse_key_id(wrapped.key_id)
        ephemeral = rsa.generate_private_key(public_exponent=65537, key_size=EPHEMERAL_BITS)
        runtime = runtime_data(ephemeral.public_key())
        evidence = self._evidence.snp_report(hashlib.sha256(runtime).digest())
        if evidence.kind != "amd-sev-snp":
            raise KeyReleaseError(MAA, f"evidence is {evidence.kind}; MAA attest/SevSnpVm takes an amd-sev-snp report")
        token = retry.call(lambda: self._attest(evidence, runtime), self._backoff)
        client = self._client(vault)
        result = retry.call(
            lambda: _call_key_vault(
                lambda: client.release_key(name, token, version=version, algorithm=RELEASE_ENC)
            ),
            self._backoff,
        )
        private = open_release(result.value, ephemeral, vault=vault, name=name, version=version, roots=self._roots)
        try:
            data_key = private.decrypt(wrapped.blob, _oaep(hashes.SHA256))
        except ValueError:
            raise KeyReleaseError(
                KEY_VAULT,
                f"the released key {wrapped.key_id} does not unwrap this data key (RSA-OAEP-256 failed): "
                "the blob was wrapped under another key or altered",
            ) from None
        return data_key

    def _client(self, vault: str) -> Any:
        if vault not in self._clients:
            self._clients[vault] = _key_client(
                _endpoint(vault, self._endpoint), self._credential, self._verify, self._timeout
            )
        return self._clients[vault]

    def _attest(self, evidence: Evidence, runtime: bytes) -> str:
        """MAA attest/SevSnpVm. The report is the SKR sidecar's bundle: base64url of
        {"SnpReport": b64url(report), "VcekCertChain": b64url(PEM VCEK, ASK, ARK)} (pkg/attest/maa.go;
        Microsoft's REST sample decodes to the same JSON)."""
        import requests

        chain = b"".join(
            x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for _, der in evidence.collateral
        )
        bundle = {"SnpReport": b64url(evidence.evidence), "VcekCertChain": b64url(chain)}
        body = {
            "report": b64url(json.dumps(bundle).encode()),
            "runtimeData": {"data": b64url(runtime), "dataType": "JSON"},
            "nonce": secrets.token_hex(16),
        }
        url = f"{self._maa}/attest/SevSnpVm?api-version={MAA_API_VERSION}"
        try:
            response = requests.post(
                url, json=body, timeout=self._timeout, verify=str(self._verify) if self._verify else True
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            raise KeyReleaseError(MAA, f"no answer from {url}: {type(error).__name__}", retryable=True) from None
        if response.status_code != 200:
            code = response.headers.get("x-ms-error-code")
            try:
                detail = response.json().get("error", {}).get("message") or response.text
            except ValueError:
                detail = response.text
            raise KeyReleaseError(
                MAA,
                f"attest/SevSnpVm answered HTTP {response.status_code}" + (f" ({code})" if code else "") + f": {detail}",
                retryable=response.status_code in RETRYABLE_STATUS,
                status=response.status_code,
            )
        try:
            token = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise KeyReleaseError(MAA, f"attest/SevSnpVm answer has no `token`: {response.text[:200]!r}") from None
        if not isinstance(token, str) or token.count(".") != 2:
            raise KeyReleaseError(MAA, "attest/SevSnpVm `token` is not a compact JWT")
        return token


def _load_roots(bundle: str | Path | None) -> list[x509.Certificate]:
    if bundle is None:
        import certifi

        bundle = certifi.where()
    return x509.load_pem_x509_certificates(Path(bundle).read_bytes())


# ---------------------------------------------------------------------------------------------- the release answer


def _jws_parts(jws: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    parts = jws.split(".") if isinstance(jws, str) else []
    if len(parts) != 3:
        raise ValueError("the release answer `value` is not a compact JWS (header.payload.signature)")
    header = json.loads(b64url_decode(parts[0], "JWS header"))
    payload = json.loads(b64url_decode(parts[1], "JWS payload"))
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise ValueError("the release answer's JWS header and payload must be JSON objects")
    return header, payload, f"{parts[0]}.{parts[1]}".encode(), b64url_decode(parts[2], "JWS signature")


def _check_signer(header: dict[str, Any], signed: bytes, signature: bytes, vault: str, roots: Sequence[x509.Certificate]) -> None:
    """RS256 by the x5c leaf, the leaf valid now, issued by a trusted root and named for the vault host
    (what the SKR sidecar checks: pkg/skr/akv.go verifyX509CertChain with DNSName = the vault)."""
    if header.get("alg") != "RS256":
        raise ValueError(f"JWS alg is {header.get('alg')!r}; Key Vault signs release answers RS256")
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain:
        raise ValueError("JWS header has no x5c: the signer cannot be identified")
    certificates = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in chain]
    leaf = certificates[0]
    public = leaf.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise ValueError("JWS x5c leaf is not an RSA certificate")
    try:
        public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("JWS signature does not verify under its x5c leaf certificate") from None
    now = dt.datetime.now(dt.timezone.utc)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        raise ValueError(f"JWS signing certificate is not valid now ({leaf.not_valid_before_utc}..{leaf.not_valid_after_utc})")
    host = urlsplit(vault).hostname or ""
    try:
        names = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if host not in names:
        raise ValueError(f"JWS signing certificate names {names}, not the vault {host!r}")
    if _issued_by(leaf, roots):
        return
    # One intermediate from x5c at most (leaf <- intermediate <- trusted root), as public TLS chains are.
    if any(_issued_by(leaf, [middle]) and _issued_by(middle, roots) for middle in certificates[1:]):
        return
    raise ValueError("JWS signing certificate does not chain to a trusted root")


def _issued_by(cert: x509.Certificate, issuers: Sequence[x509.Certificate]) -> bool:
    for root in issuers:
        try:
            cert.verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            continue
    return False


def open_release(
    jws: str,
    ephemeral: rsa.RSAPrivateKey,
    *,
    vault: str,
    name: str,
    version: str | None,
    roots: Sequence[x509.Certificate],
) -> rsa.RSAPrivateKey:
    """The released private key from Key Vault's `{"value": JWS}`; anything off is a final `KeyReleaseError`.

    Payload (wire doc §2 ii): {request{api-version, enc, kid}, response{key{key{kid, kty, key_ops, n, e,
    key_hsm}, attributes, release_policy}}}; key_hsm = b64url JSON {schema_version, header{kid, alg:
    "dir", enc}, ciphertext}; ciphertext = RSA-OAEP(AES-256 KEK) ‖ RFC 5649 wrap of the PKCS#8 DER key.
    """
    try:
        header, payload, signed, signature = _jws_parts(jws)
        _check_signer(header, signed, signature, vault, roots)
        request = payload["request"]
        key = payload["response"]["key"]["key"]
        enc = request.get("enc")
        if enc not in ENC_HASHES:
            raise ValueError(f"request.enc is {enc!r}, not one of {sorted(ENC_HASHES)}")
        _, released_name, released_version = parse_key_id(str(key.get("kid", "")))
        if released_name != name or (version is not None and released_version != version):
            raise ValueError(f"released key is {key.get('kid')!r}, not {name}/{version or '<latest>'}")
        if key.get("kty") not in {"RSA", "RSA-HSM"}:
            raise ValueError(f"released key kty is {key.get('kty')!r}; the party key is RSA-HSM")
        key_hsm = json.loads(b64url_decode(key["key_hsm"], "key_hsm"))
        if key_hsm.get("schema_version") != "1.0":
            raise ValueError(f"key_hsm schema_version is {key_hsm.get('schema_version')!r}, not '1.0'")
        hsm_header = key_hsm.get("header") or {}
        if hsm_header.get("kid") != RUNTIME_KEY_ID or hsm_header.get("alg") != "dir" or hsm_header.get("enc") != enc:
            raise ValueError(f"key_hsm header is {hsm_header}; expected kid {RUNTIME_KEY_ID}, alg dir, enc {enc}")
        ciphertext = b64url_decode(key_hsm["ciphertext"], "key_hsm.ciphertext")
        size = ephemeral.key_size // 8
        if len(ciphertext) <= size + 8:
            raise ValueError(f"key_hsm.ciphertext is {len(ciphertext)} bytes; it must exceed {size} + one wrap block")
        kek = ephemeral.decrypt(ciphertext[:size], _oaep(ENC_HASHES[enc]))
        if len(kek) != 32:
            raise ValueError(f"the key-encryption key is {len(kek)} bytes, not 32 (AES-256)")
        der = aes_key_unwrap_with_padding(kek, ciphertext[size:])
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("the released key is not an RSA private key")
        numbers = private.public_key().public_numbers()
        if _int_b64url(numbers.n) != key.get("n", "").rstrip("=") or _int_b64url(numbers.e) != key.get("e", "").rstrip("="):
            raise ValueError("the released private key does not match the response's public n/e")
        return private
    except KeyReleaseError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, InvalidUnwrap) as error:
        detail = str(error) or type(error).__name__
        if isinstance(error, InvalidUnwrap):
            detail = "RFC 5649 AES key unwrap failed (key_hsm ciphertext altered or wrapped to another key)"
        elif isinstance(error, KeyError):
            detail = f"field {error} is missing"
        raise KeyReleaseError(KEY_VAULT, f"release answer refused by the client: {detail}") from None


__all__ = [
    "ALGORITHM",
    "API_VERSION",
    "AzureReleaser",
    "AzureWrapper",
    "KEY_VAULT",
    "MAA",
    "SnpEvidenceSource",
    "open_release",
    "parse_key_id",
    "runtime_data",
]
