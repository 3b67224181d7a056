"""The shared attestation vectors: real vendor evidence read from `../shared/vectors` (or `CCP_VECTORS`).

They are never copied into the repository. When they are absent the tests that need them fail with
a message saying where they were looked for (a silent skip would make a green run prove nothing).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The manifest's kinds, as the verifier names them.
KIND = {"tpm": "azure-vtpm"}


def root() -> Path:
    path = Path(os.environ.get("CCP_VECTORS") or REPO_ROOT.parent / "shared" / "vectors")
    if not (path / "manifest.json").is_file():
        pytest.fail(
            f"attestation vectors not found at {path} (no manifest.json): put the shared folder beside the "
            "checkout or set CCP_VECTORS to its vectors/ directory",
            pytrace=False,
        )
    return path


def path(name: str) -> Path:
    return root() / name


def read(name: str) -> bytes:
    return path(name).read_bytes()


@cache
def manifest() -> list[dict[str, Any]]:
    return json.loads((root() / "manifest.json").read_text())


def at(entry: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(entry["verify_at"]).astimezone(dt.timezone.utc)


def when(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso).astimezone(dt.timezone.utc)
