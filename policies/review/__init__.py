"""The offline review: run a Pulumi program under recording mocks and every policy pack over it.

`python -m policies.review --stack dev --program .` (what `make review` runs); from Python,
`policies.review.run_review(program_dir, stack, out_dir)`.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so that importing `policies.review.mocks` (tests, components) stays light.
    if name in {"run_review", "ReviewResult"}:
        from policies.review import run

        return getattr(run, name)
    raise AttributeError(name)
