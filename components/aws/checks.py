"""Config checks of the AWS slice of a collaboration: pure functions over the config model.

Run by the config validation (`stacks.config.parse`) before any resource is declared, so every
problem is reported in one run with its `ccp:` path; `components.aws.site.Site` then only declares.
What they refuse, and why:
- an AWS party without Nitro measurements: its key is released only to attested Nitro enclaves;
- a party key in a region without a Nitro host: the enclave reaches KMS only through its own
  region's VPC endpoint, so the key could never be used;
- a host instance type that cannot run a Nitro enclave (`instance_types`);
- an enclave image (`ccp-aws:enclaveImageSizeMib`) whose enclave memory (>= 4x the image) does not fit
  a host's instance type beside what the parent keeps;
- a party `account` that is not the deploying account without a `deployRole` (the keys would land in
  the wrong account), or a `deployRole` while the keys stay in the deploying account;
- a break-glass role outside the account (and partition) the party's keys live in: KMS creates the
  key in the caller's account and its lockout check requires the creator to hold PutKeyPolicy;
- an EKS host (`kubernetes: true`) without a digest-pinned workload image: its pods run the attested
  query service from that image (`components.kubernetes.query_service`).
The account checks need the deploying account (`SiteArgs.deployment`); when it is unknown they are
skipped and every other check still runs.
"""

from __future__ import annotations

from typing import Final

from components.aws.enclave_host import EnclaveMemoryError, enclave_memory_mib, enclave_resources
from components.aws.options import NAMESPACE, AwsOptions
from components.kubernetes.query_service import image_problems
from components.model import Party
from components.site import SiteArgs, problem

DEFAULT_INSTANCE_TYPE: Final = "m6i.xlarge"


def options_of(args: SiteArgs) -> AwsOptions:
    """The `ccp-aws` section the site was given (defaults when the stack sets none)."""
    return args.options if isinstance(args.options, AwsOptions) else AwsOptions()


def problems(args: SiteArgs) -> list[str]:
    """Every config problem of the AWS slice (empty when the site can be declared)."""
    return (
        _measurements(args) + _host_regions(args) + _instance_types(args) + _accounts(args)
        + image_problems(args.indexed_hosts(), args.collaboration.workload.image)
    )


def nitro_hosts(args: SiteArgs) -> list[int]:
    """Indexes (in `collaboration.workload.hosts`) of the AWS Nitro hosts."""
    return [i for i, h in args.indexed_hosts() if h.tee == "nitro"]


def _measurements(args: SiteArgs) -> list[str]:
    if not args.parties or args.collaboration.measurements.nitro is not None:
        return []
    return [problem(
        "collaboration.measurements.nitro",
        "is required when a party is on AWS: AWS parties' keys are released only to attested Nitro enclaves; "
        "add the enclave image's measurements.nitro (pcr0, ...)",
    )]


def _host_regions(args: SiteArgs) -> list[str]:
    hosts = args.collaboration.workload.hosts
    regions = sorted({hosts[i].region for i in nitro_hosts(args)})
    return [
        problem(
            f"collaboration.parties[{index}].region",
            f"party {party.name}: its key is in {party.region} but no AWS Nitro host runs there "
            f"(hosts: {', '.join(regions) or 'none'}); the enclave reaches KMS through its own region's VPC "
            f"endpoint, so add a host in {party.region} or move the party to a host region",
        )
        for index, party in args.indexed_parties()
        if party.region not in regions
    ]


def _instance_types(args: SiteArgs) -> list[str]:
    found: list[str] = []
    size = options_of(args).enclave_image_size_mib
    memory = enclave_memory_mib(size)
    for index in nitro_hosts(args):
        host = args.collaboration.workload.hosts[index]
        try:
            enclave_resources(host.instance_type or DEFAULT_INSTANCE_TYPE, None, memory)
        except EnclaveMemoryError as error:
            found.append(problem(
                "enclaveImageSizeMib",
                f"an enclave image of {size} MiB needs {memory} MiB of enclave memory (4x, what nitro-cli "
                f"run-enclave requires) on host workload.hosts[{index}]: {error}",
                namespace=NAMESPACE,
            ))
        except ValueError as error:
            found.append(problem(f"collaboration.workload.hosts[{index}].instanceType", str(error)))
    return found


def _accounts(args: SiteArgs) -> list[str]:
    deploying = args.deployment.aws_account_id
    found: list[str] = []
    for index, party in args.indexed_parties():
        if deploying is not None:
            found += _deploy_role(index, party, deploying, args.deployment.aws_partition)
        key_account = party.account if party.account is not None else deploying
        if key_account is not None:
            found += _break_glass(index, party, key_account, args.deployment.aws_partition)
    return found


def _deploy_role(index: int, party: Party, deploying: str, partition: str) -> list[str]:
    """Keys in a foreign account are declared with a provider assuming `deployRole` there, so the
    role is required exactly when the party's account is not the deploying account."""
    if party.account is not None and party.account != deploying and party.deploy_role is None:
        return [problem(
            f"collaboration.parties[{index}].deployRole",
            f"party {party.name}: deployRole is not set but account {party.account} is not the deploying "
            f"account {deploying}: set deployRole to the IAM role of account {party.account} that declares this "
            f"party's keys there (e.g. arn:{partition}:iam::{party.account}:role/{party.name}-key-deployer), or "
            "remove account to keep the keys in the deploying account",
        )]
    if party.deploy_role is not None and party.account in (None, deploying):
        return [problem(
            f"collaboration.parties[{index}].deployRole",
            f"party {party.name}: deployRole {party.deploy_role!r} is set but the party's account is the deploying "
            f"account {deploying}: remove deployRole (the default provider deploys there), or set account to the "
            "party's own AWS account id",
        )]
    return []


def _break_glass(index: int, party: Party, key_account: str, partition: str) -> list[str]:
    glass = party.break_glass_principal or ""
    if glass.split(":")[4:5] == [key_account] and glass.split(":")[1:2] == [partition]:
        return []
    return [problem(
        f"collaboration.parties[{index}].breakGlassPrincipal",
        f"party {party.name}: breakGlassPrincipal {glass!r} is not a role of account {key_account} (partition "
        f"{partition}), where the party's keys live: KMS creates the key in the caller's account and its lockout "
        "safety check requires the creator to hold PutKeyPolicy, so the key is created by that role; name a role "
        "of the account the key lives in",
    )]
