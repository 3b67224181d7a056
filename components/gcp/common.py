"""Shared plumbing of the GCP components: physical names within GCP's limits, project facts, IAM members.

Everything here is pure or reads one invoke, so that the decisive values (names, emails, principal
sets) are plain strings known at preview, which is what the policies and the review evaluate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_gcp as gcp

from components import common

# Hardened instance metadata shared by every VM (Compute Engine metadata keys).
HARDENED_METADATA: Final[dict[str, str]] = {
    "enable-oslogin": "TRUE",
    "block-project-ssh-keys": "TRUE",
    "serial-port-enable": "FALSE",
}
CLOUD_PLATFORM_SCOPE: Final = "https://www.googleapis.com/auth/cloud-platform"
KEY_ROTATION_PERIOD: Final = "7776000s"  # 90 days: CIS GCP 1.10
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain|principal|principalSet):\S+$")


def bounded(name: str, max_length: int) -> str:
    """`components.common.bounded` with a 6-hex hash: GCP ids are short (service accounts: 30)."""
    return common.bounded(name, max_length, digest_chars=6)


def service_account_id(*parts: str) -> str:
    """A service account id: 6-30 characters, lowercase letter first, no trailing hyphen."""
    account = bounded("-".join(parts), 30)
    return account if len(account) >= 6 else account.ljust(6, "0")


def service_account_email(account_id: str, project: str) -> str:
    return f"{account_id}@{project}.iam.gserviceaccount.com"


def service_agent(project_number: str, domain: str) -> str:
    """A Google-managed service agent, e.g. `compute-system` or `container-engine-robot`."""
    return f"serviceAccount:service-{project_number}@{domain}.iam.gserviceaccount.com"


def check_member(member: str) -> str:
    """An IAM member naming one principal: never allUsers/allAuthenticatedUsers or a bare email."""
    if not isinstance(member, str) or not _MEMBER.fullmatch(member):
        raise ValueError(
            f"{member!r} is not an IAM member for one principal: use user:, group:, serviceAccount:, "
            "domain:, principal:// or principalSet:// (allUsers/allAuthenticatedUsers are refused)"
        )
    return member


@dataclass(frozen=True)
class Project:
    """A GCP project's id and number, read once with `organizations.getProject`."""

    id: str
    number: str

    @staticmethod
    def lookup(project_id: str | None = None, opts: pulumi.InvokeOptions | None = None) -> "Project":
        found = gcp.organizations.get_project(project_id=project_id, opts=opts)
        if not found.project_id or not found.number:
            raise ValueError(
                f"organizations.getProject returned no project id/number for {project_id or 'the provider default'}"
            )
        return Project(id=found.project_id, number=str(found.number))
