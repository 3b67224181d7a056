"""Read a Pulumi project directory and stack config the way the CLI would, without the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ProjectError(Exception):
    """The program directory or its stack file cannot be reviewed; the message says why and how to fix it."""


@dataclass
class Project:
    directory: Path
    name: str
    main: Path
    stack: str
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)

    def namespace(self, namespace: str) -> dict[str, Any]:
        """Config values under `namespace:` decoded back to data (objects are stored as JSON text)."""
        out: dict[str, Any] = {}
        for key, text in self.config.items():
            ns, _, name = key.partition(":")
            if ns != namespace:
                continue
            try:
                out[name] = json.loads(text)
            except json.JSONDecodeError:
                out[name] = text
        return out


def _as_config_text(value: Any) -> str:
    """Pulumi config values reach programs as strings; objects and lists as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def load(directory: Path, stack: str) -> Project:
    directory = directory.resolve()
    manifest = directory / "Pulumi.yaml"
    if not manifest.is_file():
        raise ProjectError(f"{directory}: no Pulumi.yaml; PROGRAM must be a Pulumi project directory")
    spec = yaml.safe_load(manifest.read_text()) or {}
    runtime = spec.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        raise ProjectError(
            f"{manifest}: runtime {runtime_name!r} is not supported offline; the review runs Python programs"
        )
    main = directory / spec.get("main", ".")
    entry = main / "__main__.py" if main.is_dir() else main
    if not entry.is_file():
        raise ProjectError(f"{manifest}: program entry {entry} does not exist")

    stack_file = directory / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))
        raise ProjectError(
            f"{directory}: no stack file Pulumi.{stack}.yaml (stacks here: {', '.join(known) or 'none'})"
        )
    project = Project(directory=directory, name=str(spec["name"]), main=entry, stack=stack)
    values = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    for key, value in values.items():
        full = key if ":" in key else f"{project.name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Encrypted with the stack's secrets provider, which is not reachable offline.
            project.config[full] = "[secret]"
            project.secret_keys.append(full)
        else:
            project.config[full] = _as_config_text(value)
    return project
