"""Where a Nitro parent fetches the approved enclave image file (EIF): one private bucket per host region.

The bucket is the shared `PrivateBucket` (versioned, public access blocked, TLS-only policy, noncurrent
versions expire) encrypted with SSE-KMS under a regional service key usable only through S3
(`kms:ViaService s3.<region>.amazonaws.com`). The release pipeline uploads `nitro/<version>/enclave.eif`
(`measurements.version`); the parent's boot unit (`enclave_host.workload_units`) downloads it with the
enclave role and refuses to launch it unless `nitro-cli describe-eif` reports the approved PCR0, so a
replaced object is a failed boot, never a different enclave (the key policy still pins the PCRs).

The image is not secret (its PCRs are published to every party): the bucket guards integrity and
availability; the key's purpose tag is `disk` (an at-rest service key, never attestation-bound, since
S3 calls KMS without an attestation document).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi

from components.aws.bucket import PrivateBucket, PrivateBucketArgs
from components.aws.common import Account, child, short_name
from components.aws.keys import ServiceKey, ServiceKeyArgs, admin_statement, via_service_statement
from components.key_purpose import DISK

EIF_OBJECT: Final = "nitro/{version}/enclave.eif"


def eif_object_key(version: str) -> str:
    """The object key of the approved EIF of a measurement set (`measurements.version`)."""
    if not version or "/" in version or version.startswith("."):
        raise ValueError(f"measurements.version {version!r} cannot name an enclave image object")
    return EIF_OBJECT.format(version=version)


@dataclass(frozen=True)
class EnclaveImageStoreArgs:
    region: str
    collaboration: str
    environment: str
    account: Account
    tags: dict[str, str]


class EnclaveImageStore(pulumi.ComponentResource):
    """A versioned, SSE-KMS bucket holding the approved EIF for the hosts of one region."""

    bucket_name: str
    bucket_arn: str

    def __init__(self, name: str, args: EnclaveImageStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:aws:EnclaveImageStore", name, None, opts)
        account = args.account
        self.key = ServiceKey(
            f"{name}-key",
            ServiceKeyArgs(
                region=args.region,
                description=f"ccp enclave image (EIF) key of {args.collaboration}/{args.environment}: S3 only",
                purpose=DISK,
                policy={
                    "Version": "2012-10-17",
                    "Statement": [
                        admin_statement(account),
                        via_service_statement("UseThroughS3", [account.root_arn], "s3", args.region, account),
                    ],
                },
                tags=args.tags,
            ),
            opts=child(self),
        )
        self.bucket_name = short_name(args.collaboration, args.environment, "eif", account.account_id, args.region)
        self.bucket_arn = account.bucket_arn(self.bucket_name)
        self.store = PrivateBucket(
            f"{name}-bucket",
            PrivateBucketArgs(
                region=args.region,
                bucket_name=self.bucket_name,
                bucket_arn=self.bucket_arn,
                tags=args.tags,
                kms_key_arn=self.key.key.arn,
            ),
            opts=child(self),
        )
        self.register_outputs({"bucket": self.bucket_name, "keyArn": self.key.key.arn})
