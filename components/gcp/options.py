"""GCP-only site choices (Pulumi config namespace `ccp-gcp`, a typed section of the one stack config
model: `stacks.config.StackConfig.gcp`); every default is the secure one.

- `allowIapSsh`: a firewall rule admitting SSH from Identity-Aware Proxy (default off: no ingress).
- `softwareKeysInDev`: dev only, SOFTWARE instead of HSM protection for the site's keys.
- `debugImageInDev`: dev only, the confidential-space-debug image (its tokens fail the condition, so
  it never obtains a party key).
- `restartPolicy`: the Confidential Space launcher's `tee-restart-policy` (Never, OnFailure, Always).
- `managedGroup`: Confidential Space as an instance template and a regional managed instance group.
- `notificationChannels`: Cloud Monitoring channel ids the audit alerts notify.
- `imageRepositoryGrant`: how the Confidential Space workload service account gets
  `roles/artifactregistry.reader` on the workload image's repository (the launcher pulls as that account).
  `declare` (default): this stack declares the grant on that repository, in the repository's project, so
  the stack's credentials need `artifactregistry.repositories.setIamPolicy` there. `precondition`: the
  repository lives in a project this stack does not administer; the stack declares no grant but records
  the exact one its owner must make (`ccp:gcp:ImagePullPrecondition`: project, location, repository, role,
  member, and the `gcloud` command), and the review's rule `gcp-artifactregistry-enforce-image-pull`
  checks that every Confidential Space workload's image is either granted or declared as a precondition.

Validated by `stacks.config.parse` with unknown keys refused; the dev-only switches are refused in
prod by `components.gcp.checks`. The GCP site gets them as `SiteArgs.options`.
"""

from __future__ import annotations

from typing import Final, Literal

from enclave_runtime.measurements import Model

NAMESPACE: Final = "ccp-gcp"
RestartPolicy = Literal["Never", "OnFailure", "Always"]
ImageRepositoryGrant = Literal["declare", "precondition"]


class GcpSiteOptions(Model):
    """GCP-only choices; every default is the secure one."""

    allow_iap_ssh: bool = False
    software_keys_in_dev: bool = False  # dev only: SOFTWARE instead of HSM protection
    debug_image_in_dev: bool = False  # dev only: confidential-space-debug (its tokens fail the condition)
    restart_policy: RestartPolicy = "Never"
    managed_group: bool = False  # Confidential Space as template + regional MIG
    notification_channels: tuple[str, ...] = ()
    image_repository_grant: ImageRepositoryGrant = "declare"
