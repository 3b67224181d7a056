"""Helpers the cloud site tests share: the shipped stack files, and the `SiteArgs` a stack gives one cloud.

Why here: the AWS, Azure and GCP site tests all build their `Site` from `Pulumi.<stack>.yaml` the
way the program does (`stacks.config.parse`), so one definition keeps them reading the same stack
the same way. Test modules import these with `from tests.support import ...` (a plain module: conftest files are for fixtures and are not meant to be imported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.regions import Cloud
from components.site import SiteArgs
from stacks import config

REPO_ROOT = Path(__file__).resolve().parents[1]


def read_stack(stack: str = "dev") -> dict[str, Any]:
    """The `ccp:` config of the shipped `Pulumi.<stack>.yaml`, freshly read: a test may edit it."""
    return config.read_stack_file(REPO_ROOT / f"Pulumi.{stack}.yaml")


def stack_site_args(raw: dict[str, Any], cloud: Cloud, options: Any = None) -> SiteArgs:
    """The `SiteArgs` the stack config `raw` gives `cloud` (parsed and validated as in the program):
    its options section from `raw` (e.g. `raw["ccp-azure"]`) unless a test gives `options`."""
    settings = config.parse(raw)
    return SiteArgs(
        environment=settings.environment,
        collaboration=settings.collaboration,
        cloud=cloud,
        log_retention_days=settings.log_retention_days,
        options=options if options is not None else settings.site_options().get(cloud),
    )


def with_tdx_cvm_host(collaboration: dict[str, Any], mrtd: str = "5d" * 48, replace: bool = True) -> dict[str, Any]:
    """`collaboration` (the `ccp:collaboration` value, edited in place) with an Azure TDX confidential VM
    host in germanywestcentral (replacing its other Azure hosts unless `replace` is False) and no Azure
    party: an Azure data key is never released to a TDX CVM (components/azure/checks.TDX_CVM_REFUSED:
    MRTD measures Microsoft's firmware and paravisor, not the workload), but the CVM can still be a host
    (its confidential OS disk, its NIC, its VM settings)."""
    hosts = collaboration["workload"]["hosts"]
    if replace:
        hosts[:] = [h for h in hosts if h["cloud"] != "azure"]
    hosts.append({"cloud": "azure", "region": "germanywestcentral", "tee": "tdx", "instanceType": "Standard_DC8es_v5"})
    collaboration["measurements"]["tdx"] = {"mrtd": mrtd}
    return without_parties(collaboration, "azure")


def without_parties(collaboration: dict[str, Any], cloud: str) -> dict[str, Any]:
    """`collaboration` (edited in place) without its parties on `cloud`, nor them as output recipients."""
    gone = {p["name"] for p in collaboration["parties"] if p["cloud"] == cloud}
    collaboration["parties"] = [p for p in collaboration["parties"] if p["name"] not in gone]
    for output in collaboration.get("outputs", []):
        output["recipients"] = [r for r in output["recipients"] if r not in gone]
    collaboration["outputs"] = [o for o in collaboration.get("outputs", []) if o["recipients"]]
    collaboration.pop("federated", None)  # secure aggregation needs 3 parties; these variants are about hosts
    return collaboration
