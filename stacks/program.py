"""The ccp Pulumi program: one collaboration per stack, declared from the validated `ccp` config."""

from __future__ import annotations

import re
import traceback
from pathlib import Path

import pulumi

from components.collaboration import Collaboration, CollaborationArgs
from stacks import config

COMPONENTS = Path(__file__).resolve().parents[1] / "components"


def main() -> None:
    settings = config.load()  # raises ConfigError before any resource is declared
    try:
        collaboration = Collaboration(
            settings.collaboration.name,
            CollaborationArgs(
                environment=settings.environment,
                collaboration=settings.collaboration,
                log_retention_days=settings.log_retention_days,
            ),
        )
    except ValueError as error:
        if not _raised_by_components(error):
            raise
        raise site_config_error(error, settings) from None
    pulumi.export("collaboration", settings.collaboration.name)
    pulumi.export("measurementsFingerprint", settings.collaboration.measurements.fingerprint())
    pulumi.export("sites", collaboration.site_names)


def _raised_by_components(error: BaseException) -> bool:
    """A ValueError raised by our own components while declaring is a check of the config they were
    given (a region without a host, a role in the wrong account, ...); anything else is a bug."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(COMPONENTS)


def site_config_error(error: ValueError, settings: config.StackConfig) -> config.ConfigError:
    """A cloud site's config check as a ConfigError with the `ccp:` path of the party or host it
    names, so `pulumi up` and the review report it like every other config problem.

    The sites stop at their first problem, so this is one problem per run (see the review's notes)."""
    message = str(error)
    collaboration = settings.collaboration
    for index, party in enumerate(collaboration.parties):
        if re.match(rf"party '?{re.escape(party.name)}'?[:\s]", message):
            return config.ConfigError([f"{config.NAMESPACE}:collaboration.parties[{index}]: {message}"])
    for index, host in enumerate(collaboration.workload.hosts):
        if message.startswith(f"host in {host.region}:"):
            return config.ConfigError([f"{config.NAMESPACE}:collaboration.workload.hosts[{index}]: {message}"])
    return config.ConfigError([f"{config.NAMESPACE}:collaboration: {message}"])
