"""The ccp Pulumi program: one collaboration per stack, declared from the validated `ccp` config.

`config.load()` reports every config problem (the model's and every used cloud's site checks) as
one ConfigError before any resource is declared; the components are then
given typed config (the collaboration and each cloud's options section) and only declare resources.
"""

from __future__ import annotations

import pulumi

from components.collaboration import Collaboration, CollaborationArgs
from stacks import config


def main() -> None:
    settings = config.load()  # raises ConfigError before any resource is declared
    collaboration = Collaboration(
        settings.collaboration.name,
        CollaborationArgs(
            environment=settings.environment,
            collaboration=settings.collaboration,
            log_retention_days=settings.log_retention_days,
            options=settings.site_options(),
        ),
    )
    pulumi.export("collaboration", settings.collaboration.name)
    pulumi.export("measurementsFingerprint", settings.collaboration.measurements.fingerprint())
    pulumi.export("sites", collaboration.site_names)
