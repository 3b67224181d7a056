"""GCP key release: Cloud KMS `encrypt` for the party, STS-federated `decrypt` for the Confidential Space workload.

Cloud KMS has no attestation of its own. The workload exchanges its Confidential Space attestation token
at STS for a federated access token (Workload Identity Federation: the pool provider checks issuer,
audience and the attribute condition; https://cloud.google.com/confidential-computing/confidential-space/docs/
create-grant-access-confidential-resources) and calls KMS with that token only; IAM on the key then
decides. So the releaser never holds any other credential: there is no unattested fallback path.

Both calls use the official clients (google-auth `identity_pool.Credentials` with a subject-token
*supplier*, so the attestation token never touches disk; google-cloud-kms over REST) and check the
CRC32C fields end to end as Google recommends (https://cloud.google.com/kms/docs/data-integrity-guidelines).
Retries are ours (`retry.call`), not api_core's: throttling, 5xx, timeouts and dropped connections are
retried a bounded number of times; an STS `OAuthError` or a KMS 403 is final with the service's words.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Final, Protocol, TypeVar

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import identity_pool
from google.auth.credentials import Credentials
from google.auth.transport.requests import Request as AuthRequest

with warnings.catch_warnings():
    # google.api_core warns (FutureWarning) on import that Python 3.11 support will end; nothing to act on here.
    warnings.simplefilter("ignore", FutureWarning)
    from google.api_core import exceptions as api_exceptions
    from google.cloud import kms

from . import retry
from .base import KeyReleaseError, WrappedKey

T = TypeVar("T")

STS: Final = "GCP STS"
KMS: Final = "Cloud KMS"
ALGORITHM: Final = "GOOGLE_SYMMETRIC_ENCRYPTION"  # the symmetric algorithm KMS uses for ENCRYPT_DECRYPT keys
DATA_KEY_BYTES: Final = 32
# The Confidential Space default token's audience, the one a pool provider for it allows
# (https://cloud.google.com/confidential-computing/confidential-space/docs/connect-external-resources).
STS_AUDIENCE: Final = "https://sts.googleapis.com"
DEFAULT_TOKEN_URL: Final = "https://sts.googleapis.com/v1/token"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})


# --- CRC32C ---------------------------------------------------------------------------------------
# Castagnoli CRC (RFC 3720 appendix B.4), the checksum KMS reports; pure Python: the inputs are a few
# dozen bytes and google-crc32c is not in the lock.
def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE: Final = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- evidence ----------------------------------------------------------------------------------------


class TokenSource(Protocol):
    """Where the workload's Confidential Space attestation token comes from, fresh on every call."""

    def token(self, audience: str) -> bytes: ...


@dataclass(frozen=True)
class LauncherTokens:
    """The real source: the Confidential Space launcher in this VM.

    The default audience (STS's) is the launcher's default token file, which the launcher refreshes
    hourly and which Google's Workload Identity Federation samples use; any other audience is asked of
    the launcher's token server with a fresh random nonce (`POST /v1/token` on `teeserver.sock`).
    """

    launcher: str | None = None
    timeout: float = 30.0

    def token(self, audience: str) -> bytes:
        from enclave_runtime.evidence import confidential_space as cs

        launcher = self.launcher or cs.LAUNCHER
        try:
            if audience == STS_AUDIENCE:
                return cs.default_token(launcher)
            return cs.request_token(
                os.path.join(launcher, cs.SOCKET), audience, [os.urandom(16).hex()], self.timeout
            )
        except cs.EvidenceError as error:
            raise KeyReleaseError("Confidential Space launcher", str(error)) from None


class _Supplier(identity_pool.SubjectTokenSupplier):
    """Hands the token to google-auth in memory (`credential_source.file` would need it on disk)."""

    def __init__(self, source: TokenSource, audience: str) -> None:
        self._source = source
        self._audience = audience

    def get_subject_token(self, context: Any, request: Any) -> str:
        try:
            return self._source.token(self._audience).decode("ascii")
        except KeyReleaseError:
            raise
        except Exception as error:  # noqa: BLE001 - any evidence failure is a refusal to proceed
            raise KeyReleaseError("Confidential Space launcher", f"no attestation token: {error}") from None


class _StatusRequest(AuthRequest):
    """google-auth's requests transport, remembering the last status (an `OAuthError` does not carry it)
    and applying our timeout to the STS call (google-auth's default is 120 s)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session)
        self.timeout = timeout
        self.status: int | None = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        self.status = None
        response = super().__call__(url, method, body, headers, timeout or self.timeout, **kwargs)
        self.status = response.status
        return response


# --- errors -----------------------------------------------------------------------------------------


def _service_message(error: Any) -> str:
    """KMS's own words: `error.message` of its JSON error body (api_core prefixes it with the method and
    URL, and says only "unknown error" for a body not in Google's shape, e.g. a proxy's 5xx page)."""
    response = getattr(error, "response", None)
    try:
        body = response.json()  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - not JSON
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and isinstance(inner.get("message"), str) and inner["message"]:
            return inner["message"]
        if isinstance(body.get("message"), str) and body["message"]:
            return f"HTTP {error.code}: {body['message']}"
    text = getattr(response, "text", "") or ""
    return f"HTTP {error.code}: {text[:300].strip()}" if text else str(error.message or error)


def _kms_call(operation: Callable[[], T]) -> T:
    """Run one KMS call, mapping its failures to `KeyReleaseError` (retryable or final)."""
    try:
        return operation()
    except api_exceptions.GoogleAPICallError as error:
        status = int(error.code) if isinstance(error.code, int) else None
        retryable = status in RETRYABLE_STATUS or isinstance(
            error, (api_exceptions.DeadlineExceeded, api_exceptions.ServiceUnavailable)
        )
        raise KeyReleaseError(KMS, _service_message(error), retryable=retryable, status=status) from None
    except (requests.ConnectionError, requests.Timeout, auth_exceptions.TransportError) as error:
        raise KeyReleaseError(
            KMS, f"cannot reach Cloud KMS: {type(error).__name__}: {error}", retryable=True
        ) from None
    except auth_exceptions.RefreshError as error:
        # The client refreshed on a 401 and the credential could not be renewed: final.
        raise KeyReleaseError(KMS, f"credentials refused and not renewable: {error}", status=401) from None


def _client(credentials: Credentials, api_endpoint: str | None) -> Any:
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    return kms.KeyManagementServiceClient(credentials=credentials, transport="rest", client_options=options)


# --- party side ---------------------------------------------------------------------------------------


class GcpWrapper:
    """Wraps a data key under the party's Cloud KMS key with the party's own credentials (no attestation:
    `encrypt` never returns plaintext, so the owner needs only `roles/cloudkms.cryptoKeyEncrypter`)."""

    cloud: Final = "gcp"

    def __init__(
        self,
        key_name: str,
        credentials: Credentials,
        *,
        api_endpoint: str | None = None,
        timeout: float = 10.0,
        backoff: retry.Backoff = retry.Backoff(),
    ) -> None:
        self.key_name = key_name
        self._client = _client(credentials, api_endpoint)
        self._timeout = timeout
        self._backoff = backoff

    def new_data_key(self) -> tuple[bytes, WrappedKey]:
        """A fresh random data key and its wrapped form."""
        data_key = os.urandom(DATA_KEY_BYTES)
        return data_key, self.wrap(data_key)

    def wrap(self, data_key: bytes) -> WrappedKey:
        if len(data_key) != DATA_KEY_BYTES:
            raise ValueError(f"a data key is {DATA_KEY_BYTES} bytes (AES-256), got {len(data_key)}")
        request = {"name": self.key_name, "plaintext": data_key, "plaintext_crc32c": crc32c(data_key)}

        def encrypt() -> Any:
            return _kms_call(lambda: self._client.encrypt(request=request, retry=None, timeout=self._timeout))

        response = retry.call(encrypt, self._backoff)
        # https://cloud.google.com/kms/docs/data-integrity-guidelines: the service must confirm it saw the
        # plaintext we sent, and the ciphertext must arrive as the service computed it.
        if not response.verified_plaintext_crc32c:
            raise KeyReleaseError(
                KMS, "encrypt response did not verify plaintext_crc32c: the request was corrupted in transit"
            )
        if crc32c(response.ciphertext) != response.ciphertext_crc32c:
            raise KeyReleaseError(
                KMS, "encrypt response ciphertext does not match its ciphertext_crc32c: corrupted in transit"
            )
        if response.name != self.key_name and not response.name.startswith(
            self.key_name + "/cryptoKeyVersions/"
        ):
            raise KeyReleaseError(KMS, f"encrypt answered for key {response.name!r}, not {self.key_name!r}")
        return WrappedKey("gcp", self.key_name, ALGORITHM, bytes(response.ciphertext))


# --- workload side ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Federation:
    """The external-account configuration of the pool provider that trusts Confidential Space.

    `audience` is `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`
    (https://cloud.google.com/iam/docs/workload-identity-federation-with-other-providers#create-cred-config).
    """

    project_number: str
    pool_id: str
    provider_id: str
    token_url: str = DEFAULT_TOKEN_URL

    @property
    def audience(self) -> str:
        return (
            f"//iam.googleapis.com/projects/{self.project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool_id}/providers/{self.provider_id}"
        )


class GcpReleaser:
    """Unwraps data keys inside a Confidential Space VM: attestation token → STS → KMS `decrypt`.

    Every `unwrap` takes a fresh token from `tokens` and a fresh STS exchange, so a released key always
    rests on current evidence. The only credential is the federated one built here.
    """

    cloud: Final = "gcp"

    def __init__(
        self,
        federation: Federation,
        tokens: TokenSource,
        *,
        api_endpoint: str | None = None,
        token_audience: str = STS_AUDIENCE,
        timeout: float = 10.0,
        backoff: retry.Backoff = retry.Backoff(),
    ) -> None:
        self.federation = federation
        self._credentials = identity_pool.Credentials(
            audience=federation.audience,
            subject_token_type=JWT_TOKEN_TYPE,
            token_url=federation.token_url,
            subject_token_supplier=_Supplier(tokens, token_audience),
            scopes=[CLOUD_PLATFORM_SCOPE],
        )
        self._session = requests.Session()
        self._client = _client(self._credentials, api_endpoint)
        self._timeout = timeout
        self._backoff = backoff

    def _exchange(self) -> None:
        """One STS token exchange (a fresh attestation token each time)."""
        request = _StatusRequest(self._session, self._timeout)
        try:
            self._credentials.refresh(request)
        except auth_exceptions.OAuthError as error:
            status = request.status
            retryable = status in RETRYABLE_STATUS
            reason = str(error.args[0]) if error.args else str(error)
            if status is not None:
                reason = f"HTTP {status}: {reason}"
            raise KeyReleaseError(STS, reason, retryable=retryable, status=status) from None
        except auth_exceptions.TransportError as error:
            raise KeyReleaseError(
                STS, f"cannot reach STS at {self.federation.token_url}: {error}", retryable=True
            ) from None
        except auth_exceptions.RefreshError as error:
            raise KeyReleaseError(STS, f"token exchange failed: {error}", status=request.status) from None

    def unwrap(self, wrapped: WrappedKey) -> bytes:
        if wrapped.cloud != "gcp":
            raise KeyReleaseError(
                KMS, f"wrapped key is for {wrapped.cloud!r}, not gcp: route it to that cloud's client"
            )
        if wrapped.algorithm != ALGORITHM:
            raise KeyReleaseError(KMS, f"wrapped key algorithm {wrapped.algorithm!r} is not {ALGORITHM}")
        retry.call(self._exchange, self._backoff)
        request = {
            "name": wrapped.key_id,
            "ciphertext": wrapped.blob,
            "ciphertext_crc32c": crc32c(wrapped.blob),
        }

        def decrypt() -> Any:
            return _kms_call(lambda: self._client.decrypt(request=request, retry=None, timeout=self._timeout))

        response = retry.call(decrypt, self._backoff)
        plaintext = bytes(response.plaintext)
        if crc32c(plaintext) != response.plaintext_crc32c:
            raise KeyReleaseError(
                KMS, "decrypt response plaintext does not match its plaintext_crc32c: corrupted in transit"
            )
        if len(plaintext) != DATA_KEY_BYTES:
            raise KeyReleaseError(
                KMS, f"released key is {len(plaintext)} bytes, expected a {DATA_KEY_BYTES}-byte data key"
            )
        return plaintext

    def __repr__(self) -> str:
        return f"GcpReleaser(audience={self.federation.audience!r})"
