"""Party side: the `Wrapper` for a party's cloud, built from what a person at a terminal can give.

`python -m enclave_runtime seal` needs one wrapper per run: the party's cloud (from the stack file),
the party key's id (`--key-id`), and the party's *own* credentials. Wrapping returns no plaintext, so no
attestation is involved; the key policy lets the data owner encrypt only, which is why a caller that
is not the owner is refused by the key service (a `KeyReleaseError` from `wrap`), not here.

Each cloud SDK is imported only when that cloud is asked for: none is in the runtime's own
requirements (`enclave_runtime/requirements.txt`), a party sealing for AWS should not need the Azure
and Google SDKs, and a missing SDK is reported as such (`WrapperConfigError`, field `cloud`).

Credentials:
- AWS: boto3's default chain (environment, `AWS_PROFILE`, SSO, instance role); the region is the key
  ARN's, so a profile's default region cannot send the request to another region's KMS.
- GCP: a bearer token if one is given (`gcloud auth print-access-token`), else Application Default
  Credentials (`gcloud auth application-default login`, or a service account on GCE).
- Azure: a bearer token for `https://vault.azure.net` (`az account get-access-token --resource
  https://vault.azure.net`). azure-identity is not a dependency of the runtime, so there is no
  default chain: without a token this refuses with the command that gets one.
A token is passed in by value here; the CLI reads it from an environment variable, never from argv.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from .base import CLOUDS, KeyReleaseError, WrappedKey, Wrapper

AZURE_RESOURCE: Final = "https://vault.azure.net"
AZURE_TOKEN_HELP: Final = (
    "get a Key Vault token as the party's owner identity and pass the variable's name, e.g. "
    "`export AZURE_KV_TOKEN=$(az account get-access-token --resource https://vault.azure.net "
    "--query accessToken -o tsv)` then `--access-token-env AZURE_KV_TOKEN`"
)
GCP_TOKEN_HELP: Final = (
    "give `--access-token-env VAR` with VAR holding `gcloud auth print-access-token`, "
    "or set up Application Default Credentials (`gcloud auth application-default login`)"
)
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"

# Shapes of a party key id per cloud. Only full ids: a bare AWS key id or alias name has no region,
# and a GCP key *version* cannot be decrypted by name later (the wrapped key names the crypto key).
_AWS_KEY: Final = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):(?P<account>\d{12}):"
    r"(?P<kind>key|alias)/(?P<name>[A-Za-z0-9/_-]+)$"
)
_AZURE_KEY: Final = re.compile(
    r"^https://(?P<host>[A-Za-z0-9.-]+(?::\d+)?)/keys/(?P<name>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]+))?/?$"
)
_GCP_KEY: Final = re.compile(
    r"^projects/[a-z0-9-]+(?:\.[a-z0-9-]+)?/locations/[a-z0-9-]+/keyRings/[A-Za-z0-9_-]+/cryptoKeys/[A-Za-z0-9_-]+$"
)
KEY_ID_SHAPES: Final[dict[str, str]] = {
    "aws": "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID or arn:aws:kms:REGION:ACCOUNT:alias/NAME "
    "(the party key's ARN, e.g. from `aws kms describe-key --key-id alias/NAME`)",
    "azure": "https://VAULT.vault.azure.net/keys/NAME[/VERSION] (the key's `kid`, e.g. from "
    "`az keyvault key show --vault-name VAULT --name NAME --query key.kid`)",
    "gcp": "projects/PROJECT/locations/LOCATION/keyRings/RING/cryptoKeys/KEY (the crypto key, not a version; "
    "e.g. from `gcloud kms keys list --keyring RING --location LOCATION`)",
}


class WrapperConfigError(ValueError):
    """What was given cannot make a wrapper; `field` names the option (or setting) to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_key_id(cloud: str, key_id: str) -> None:
    """Refuse a key id that is not the full id of a key in `cloud`, saying what shape is expected.

    Checked before any request so that, e.g., an Azure key URL given for an AWS party is a clear
    usage error rather than a confusing `NotFoundException` from the wrong service."""
    if cloud not in CLOUDS:
        raise WrapperConfigError("cloud", f"cloud {cloud!r} is not one of {list(CLOUDS)}")
    pattern = {"aws": _AWS_KEY, "azure": _AZURE_KEY, "gcp": _GCP_KEY}[cloud]
    if not isinstance(key_id, str) or not pattern.match(key_id):
        hint = ""
        if cloud == "gcp" and isinstance(key_id, str) and "/cryptoKeyVersions/" in key_id:
            hint = " Drop the /cryptoKeyVersions/N suffix: KMS encrypts with the primary version."
        elif cloud == "aws" and isinstance(key_id, str) and not key_id.startswith("arn:"):
            hint = " A bare key id or alias name has no region: give the full ARN."
        raise WrapperConfigError(
            "--key-id", f"--key-id {key_id!r} is not a party key id for {cloud}; expected {KEY_ID_SHAPES[cloud]}.{hint}"
        )


def wrapper_for(
    cloud: str,
    key_id: str,
    *,
    endpoint: str | None = None,
    access_token: str | None = None,
    ca_file: Path | str | None = None,
) -> Wrapper:
    """The party-side wrapper for `cloud` and `key_id`, with the caller's own credentials.

    `endpoint` replaces the cloud's service URL (a stand-in, a VPC endpoint); `ca_file` is a PEM bundle
    to trust for it. Raises `WrapperConfigError` for anything fixable by the caller before a request.
    """
    check_key_id(cloud, key_id)
    if ca_file is not None and not Path(ca_file).is_file():
        raise WrapperConfigError("--ca-file", f"--ca-file {str(ca_file)!r} is not a file; give a PEM CA bundle")
    if endpoint is not None and not re.match(r"^https?://[^\s/]+", endpoint):
        raise WrapperConfigError("--endpoint", f"--endpoint {endpoint!r} is not an http(s) URL (e.g. https://kms.example:443)")
    if cloud == "aws":
        return _aws(key_id, endpoint, access_token, ca_file)
    if cloud == "gcp":
        return _gcp(key_id, endpoint, access_token, ca_file)
    return _azure(key_id, endpoint, access_token, ca_file)


# --- AWS ----------------------------------------------------------------------------------------------


def _aws(key_id: str, endpoint: str | None, access_token: str | None, ca_file: Path | str | None) -> Wrapper:
    if access_token is not None:
        raise WrapperConfigError(
            "--access-token-env",
            "AWS takes no bearer token: drop --access-token-env and use the default credential chain "
            "(AWS_PROFILE, `aws sso login`, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN)",
        )
    try:
        import boto3.session
        from botocore.config import Config

        from . import aws
    except ImportError as exc:
        raise WrapperConfigError("cloud", f"the AWS SDK is not installed ({exc}): install boto3") from None
    match = _AWS_KEY.match(key_id)
    assert match is not None  # check_key_id passed
    # The same client settings as `aws.kms_client` (botocore retries off: `retry.call` is the one loop),
    # plus `verify` for a CA bundle, which that helper does not take. A fresh session, not boto3's
    # module-level default one: that one caches the credentials it first resolved, so an in-process
    # caller that switches identity (a test, a notebook) would silently keep using the old one.
    client = boto3.session.Session().client(
        "kms",
        region_name=match["region"],
        endpoint_url=endpoint,
        verify=str(ca_file) if ca_file is not None else None,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=aws.CONNECT_TIMEOUT,
            read_timeout=aws.READ_TIMEOUT,
        ),
    )
    if match["kind"] == "alias":
        return _AwsAliasWrapper(client, key_id, region=match["region"], account=match["account"], partition=match["partition"])
    return aws.AwsWrapper(client, key_id)


class _AwsAliasWrapper:
    """`AwsWrapper` for an alias ARN: KMS answers `Encrypt` with the *key* ARN the alias points to.

    `AwsWrapper` rightly refuses an answer for a key other than the one asked for; for an alias the
    answer must instead be a key ARN in the alias's own partition, region and account (an alias can
    only name a key there). The wrapped key records that key ARN, which is what the workload's
    attested `Decrypt` must name, and it stays right even if the alias is later re-pointed.
    Resolving the alias with `DescribeKey` first would cost a second round trip and a second
    permission for no more assurance: the Encrypt answer is the resolution.
    """

    cloud = "aws"

    def __init__(self, client: Any, alias_arn: str, *, region: str, account: str, partition: str) -> None:
        from . import retry

        self._client = client
        self.key_arn = alias_arn
        self.backoff = retry.Backoff()
        self._key_arn = re.compile(rf"^arn:{re.escape(partition)}:kms:{re.escape(region)}:{account}:key/[A-Za-z0-9-]+$")

    def wrap(self, data_key: bytes) -> WrappedKey:
        from . import aws, retry

        if not 1 <= len(data_key) <= aws.MAX_PLAINTEXT:
            raise ValueError(f"a data key is 1..{aws.MAX_PLAINTEXT} bytes for KMS Encrypt, got {len(data_key)}")
        response = retry.call(
            lambda: aws.call(
                self._client.encrypt, KeyId=self.key_arn, Plaintext=bytes(data_key), EncryptionAlgorithm=aws.ALGORITHM
            ),
            self.backoff,
        )
        blob = response.get("CiphertextBlob")
        if not isinstance(blob, bytes) or not blob:
            raise KeyReleaseError(aws.SERVICE, "Encrypt response has no CiphertextBlob")
        returned = response.get("KeyId")
        if not isinstance(returned, str) or not self._key_arn.match(returned):
            raise KeyReleaseError(
                aws.SERVICE,
                f"Encrypt with alias {self.key_arn!r} answered for key {returned!r}, not a key ARN in the alias's account and region",
            )
        return WrappedKey("aws", returned, aws.ALGORITHM, blob)


# --- GCP ----------------------------------------------------------------------------------------------


def _gcp(key_id: str, endpoint: str | None, access_token: str | None, ca_file: Path | str | None) -> Wrapper:
    try:
        with warnings.catch_warnings():
            # google.api_core warns on import about Python versions; nothing a sealing party can act on.
            warnings.simplefilter("ignore", FutureWarning)
            import google.auth
            from google.auth import exceptions as auth_exceptions
            from google.oauth2 import credentials as oauth2

            from . import gcp
    except ImportError as exc:
        raise WrapperConfigError(
            "cloud", f"the Google Cloud SDK is not installed ({exc}): install google-cloud-kms and google-auth"
        ) from None
    if access_token is not None:
        credentials: Any = oauth2.Credentials(access_token)
    else:
        try:
            credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
        except auth_exceptions.DefaultCredentialsError as exc:
            raise WrapperConfigError("--access-token-env", f"no Google credentials ({exc}); {GCP_TOKEN_HELP}") from None
    wrapper = gcp.GcpWrapper(key_id, credentials, api_endpoint=endpoint)
    return wrapper if ca_file is None else _WithCaBundle(wrapper, Path(ca_file))


class _WithCaBundle:
    """A wrapper whose HTTPS calls trust `ca_file`, for the Google client that takes no CA option.

    google-cloud-kms over REST sends through a `requests` session without `verify`, so requests uses
    `REQUESTS_CA_BUNDLE`; it is set only while `wrap` runs, and restored after, so an in-process caller
    (a test, a notebook) is not left trusting the bundle for everything else.
    """

    def __init__(self, inner: Wrapper, ca_file: Path) -> None:
        self._inner = inner
        self._ca_file = ca_file
        self.cloud = inner.cloud

    def wrap(self, data_key: bytes) -> WrappedKey:
        with _env("REQUESTS_CA_BUNDLE", str(self._ca_file)):
            return self._inner.wrap(data_key)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


# --- Azure --------------------------------------------------------------------------------------------


class BearerTokenCredential:
    """The smallest azure-core `TokenCredential`: one bearer token the caller already holds.

    Its expiry is the token's `exp` claim when it is a JWT (Entra ID tokens are), so azure-core does
    not treat a fresh token as expired; the claim is read, not verified (Key Vault verifies it).
    """

    def __init__(self, token: str) -> None:
        self._token = token
        self._expires_on = _jwt_expiry(token) or int(time.time()) + 300

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, self._expires_on)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, self._expires_on)

    def __repr__(self) -> str:  # never show the token
        return f"BearerTokenCredential(expires_on={self._expires_on})"


def _jwt_expiry(token: str) -> int | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return exp if isinstance(exp, int) and not isinstance(exp, bool) else None


def _azure(key_id: str, endpoint: str | None, access_token: str | None, ca_file: Path | str | None) -> Wrapper:
    if access_token is None:
        raise WrapperConfigError(
            "--access-token-env",
            f"Azure needs a bearer token (azure-identity is not part of the runtime): {AZURE_TOKEN_HELP}",
        )
    if endpoint is not None and not endpoint.startswith("https://"):
        raise WrapperConfigError(
            "--endpoint", f"--endpoint {endpoint!r} is not https: Key Vault and its bearer tokens need TLS"
        )
    try:
        import azure.keyvault.keys  # noqa: F401 - fail here, clearly, rather than inside the wrapper

        from . import azure
    except ImportError as exc:
        raise WrapperConfigError(
            "cloud", f"the Azure SDK is not installed ({exc}): install azure-keyvault-keys"
        ) from None
    try:
        return azure.AzureWrapper(
            key_id, BearerTokenCredential(access_token), endpoint=endpoint, connection_verify=ca_file
        )
    except KeyReleaseError as exc:  # configuration refused before any request
        raise WrapperConfigError("--key-id" if "key id" in exc.reason else "--endpoint", exc.reason) from None


__all__ = ["BearerTokenCredential", "KEY_ID_SHAPES", "WrapperConfigError", "check_key_id", "wrapper_for"]
