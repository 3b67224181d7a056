"""The ccp program itself (stacks.program), run from this directory on the Kubernetes fixture stack.

Why a fixture and not a shipped stack: no shipped `Pulumi.<stack>.yaml` declares a `kubernetes: true`
host, and the review of one must pass before any does (tests/kubernetes/test_query_service.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from stacks.program import main  # noqa: E402

main()
