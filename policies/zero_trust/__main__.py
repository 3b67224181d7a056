"""Entry point the Pulumi CLI runs: it only builds the pack (the constructor serves gRPC and blocks).

The CLI runs this file from the pack directory, so the repository root is put on sys.path first:
the rules import `policies.zero_trust...` and `components.attestation...`.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import PolicyPack  # noqa: E402

from policies.zero_trust.pack import ENFORCEMENT_LEVEL, INITIAL_CONFIG, NAME, POLICIES  # noqa: E402

PolicyPack(
    name=NAME,
    policies=POLICIES,
    enforcement_level=ENFORCEMENT_LEVEL,
    initial_config=INITIAL_CONFIG,
)
