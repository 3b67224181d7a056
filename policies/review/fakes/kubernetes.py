"""Kubernetes answers: objects echo their metadata, as the API server would."""

from __future__ import annotations

from typing import Any


def outputs(type_: str, name: str, inputs: dict[str, Any], resource_id: str) -> dict[str, Any]:
    return {}


INVOKES: dict[str, Any] = {}
