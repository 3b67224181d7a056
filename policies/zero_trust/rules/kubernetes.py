"""Kubernetes rules: what runs in the clusters is the attested, digest-pinned image."""

from __future__ import annotations

import re
from typing import Final, Iterable

from pulumi_policy import Severity

from policies.zero_trust.rules._base import Subject, is_all_zero, resource_rule

WORKLOADS: Final = (
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:StatefulSet",
)
POD: Final = "kubernetes:core/v1:Pod"
_DIGEST: Final = re.compile(r"@sha256:([0-9a-f]{64})$")


@resource_rule(
    name="kubernetes-apps-workload-enforce-image-digest",
    description="Pods run container images pinned by digest: the digest is what attestation and key release check.",
    types=WORKLOADS + (POD,),
    reads={
        **{t: ("spec.template.spec.containers[*].image",) for t in WORKLOADS},
        POD: ("spec.containers[*].image",),
    },
    severity=Severity.HIGH,
    controls=("nist:CM-2", "nist:SI-7", "hipaa:164.312(c)(1)"),
    remediation="Reference every container image as <repository>@sha256:<digest>, never by tag.",
    url="https://kubernetes.io/docs/concepts/containers/images/#image-names",
    confidential=True,
)
def kubernetes_apps_workload_enforce_image_digest(subject: Subject) -> Iterable[str]:
    path = "spec.containers[*].image" if subject.type == POD else "spec.template.spec.containers[*].image"
    for image in subject.need_all(path):
        match = _DIGEST.search(str(image))
        if not match:
            yield f"{subject.name}: image {image!r} is not pinned by digest"
        elif is_all_zero(match.group(1)):
            yield f"{subject.name}: image {image!r} pins an all-zero digest"


POLICIES = [kubernetes_apps_workload_enforce_image_digest]
