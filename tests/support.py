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
