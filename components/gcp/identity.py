"""Workload Identity Federation for Confidential Space: the pool and its attestation-verifier provider.

The provider trusts the Confidential Computing attestation service as an OIDC issuer, accepts only
the STS audience, and admits a token only if the strict CEL condition generated from the approved
measurements holds (see `components.attestation.gcp_condition`). Pools are always global.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.attestation.gcp_condition import AUDIENCE, ISSUER, attribute_mapping


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    project: str
    pool_id: str
    provider_id: str
    condition: str  # from gcp_condition.attribute_condition: a plain string, known at preview
    description: str = ""


class WorkloadIdentity(pulumi.ComponentResource):
    pool: gcp.iam.WorkloadIdentityPool
    provider: gcp.iam.WorkloadIdentityPoolProvider

    def __init__(self, name: str, args: WorkloadIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ccp:gcp:WorkloadIdentity", name, None, opts)
        if args.pool_id.startswith("gcp-"):
            raise ValueError(f"pool id {args.pool_id!r}: the 'gcp-' prefix is reserved by Google")
        child = pulumi.ResourceOptions(parent=self)
        self.pool = gcp.iam.WorkloadIdentityPool(
            f"{name}-pool",
            workload_identity_pool_id=args.pool_id,
            project=args.project,
            display_name=args.pool_id[:32],
            description=args.description or "ccp Confidential Space workloads",
            disabled=False,
            opts=child,
        )
        self.provider = gcp.iam.WorkloadIdentityPoolProvider(
            f"{name}-provider",
            workload_identity_pool_id=args.pool_id,
            workload_identity_pool_provider_id=args.provider_id,
            project=args.project,
            display_name="Confidential Space attestation",
            description="Admits only approved, production Confidential Space images",
            disabled=False,
            oidc=gcp.iam.WorkloadIdentityPoolProviderOidcArgs(
                issuer_uri=ISSUER,
                allowed_audiences=[AUDIENCE],
            ),
            attribute_mapping=attribute_mapping(),
            attribute_condition=args.condition,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pool]),
        )
        self.register_outputs({"pool": self.pool.name, "provider": self.provider.name})
