"""Config checks of the GCP slice of a collaboration: pure functions over the config model.

Run by the config validation (`stacks.config.parse`) before any resource is declared, so every
problem is reported in one run with its `ccp:` (or `ccp-gcp:`) path; `components.gcp.site.Site`
then only declares. What they refuse, and why:
- the dev-only options (software keys, the debug image) in a prod stack;
- a Confidential Space host on GKE (Confidential Space runs on Compute Engine VMs only);
- GCP parties without a Confidential Space host (their key could never be released);
- a workload image that is not pinned by an approved digest (the VM must run the attested image), and
  for GKE hosts one not pinned by digest at all (their pods run the attested query service from it);
- a machine type whose family cannot run the host's confidential type (fails only after minutes at
  `pulumi up` otherwise).
"""

from __future__ import annotations

from components.attestation.gcp_condition import approved_digests
from components.gcp.compute import pinned_image
from components.gcp.machines import DEFAULT_MACHINE_TYPE, TYPE_BY_TEE, confidential_space_type, validate_machine_type
from components.gcp.options import NAMESPACE, GcpSiteOptions
from components.kubernetes.query_service import image_problems
from components.model import WorkloadHost
from components.site import SiteArgs, problem

SPACE_TEE = "confidential-space"


def options_of(args: SiteArgs) -> GcpSiteOptions:
    """The `ccp-gcp` section the site was given (defaults when the stack sets none)."""
    return args.options if isinstance(args.options, GcpSiteOptions) else GcpSiteOptions()


def machine_type(host: WorkloadHost) -> str:
    """The host's machine type (a Confidential Space host defaults to an AMD SEV type)."""
    confidential_type = TYPE_BY_TEE.get(host.tee, "SEV")
    return host.instance_type or DEFAULT_MACHINE_TYPE[confidential_type]


def problems(args: SiteArgs) -> list[str]:
    """Every config problem of the GCP slice (empty when the site can be declared)."""
    return (
        _dev_only(args) + _hosts(args) + _parties(args) + _image(args)
        + image_problems(args.indexed_hosts(), args.collaboration.workload.image)
    )


def _dev_only(args: SiteArgs) -> list[str]:
    if not args.prod:
        return []
    options = options_of(args)
    found: list[str] = []
    if options.software_keys_in_dev:
        found.append(problem(
            "softwareKeysInDev",
            "true is a dev-only option and this is a prod stack: production keys are HSM-backed; remove it",
            NAMESPACE,
        ))
    if options.debug_image_in_dev:
        found.append(problem(
            "debugImageInDev",
            "true is a dev-only option and this is a prod stack: the confidential-space-debug image lets the "
            "operator into the VM and never receives production keys; remove it",
            NAMESPACE,
        ))
    return found


def _hosts(args: SiteArgs) -> list[str]:
    found: list[str] = []
    for index, host in args.indexed_hosts():
        path = f"collaboration.workload.hosts[{index}]"
        if host.tee == SPACE_TEE and host.kubernetes:
            found.append(problem(
                f"{path}.kubernetes",
                f"host in {host.region}: Confidential Space runs on Compute Engine VMs, not GKE; set kubernetes: "
                "false or use tee sev-snp/tdx for Confidential GKE Nodes",
            ))
        try:
            if host.tee == SPACE_TEE:
                confidential_space_type(machine_type(host))
            elif host.tee in TYPE_BY_TEE:
                validate_machine_type(machine_type(host), TYPE_BY_TEE[host.tee])
        except ValueError as error:
            found.append(problem(f"{path}.instanceType", str(error)))
    return found


def _space_hosts(args: SiteArgs) -> list[WorkloadHost]:
    return [h for h in args.hosts if h.tee == SPACE_TEE]


def _parties(args: SiteArgs) -> list[str]:
    if _space_hosts(args):
        return []
    return [
        problem(
            f"collaboration.parties[{index}].cloud",
            f"party {party.name!r} is on GCP but the collaboration has no Confidential Space host: its key could "
            "never be released (add a gcp host with tee confidential-space)",
        )
        for index, party in args.indexed_parties()
    ]


def _image(args: SiteArgs) -> list[str]:
    if not _space_hosts(args):
        return []
    try:
        pinned_image(args.collaboration.workload.image, approved_digests(args.collaboration.measurements))
    except ValueError as error:
        return [problem("collaboration.workload.image", str(error))]
    return []
