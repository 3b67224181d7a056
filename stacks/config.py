"""Typed stack configuration: the Pulumi config namespace `ccp`, validated into the domain model.

Every invalid value is reported before any resource is declared, one message per problem, naming
the config key (`ccp:collaboration.parties[1].region`), the bad value and what is expected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Mapping

from pulumi.errors import RunError
from pydantic import Field, ValidationError

from enclave_runtime.measurements import Model
from components.model import Collaboration, Environment

NAMESPACE: Final = "ccp"


class ConfigError(RunError):
    """Invalid stack configuration; `problems` holds one actionable message each.

    A `RunError`, so `pulumi up` prints the problems and stops without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid ccp configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class StackConfig(Model):
    environment: Environment
    collaboration: Collaboration
    log_retention_days: int = Field(default=365, ge=1, le=3653)
    # Trusted signers of the approved measurements: key id -> PEM public key (Ed25519 or ECDSA
    # P-256). When set, the measurements must carry a valid signature by one of them.
    measurement_signers: dict[str, str] = Field(default_factory=dict)


def _path(loc: tuple[Any, ...]) -> str:
    out = NAMESPACE + ":"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("" if out.endswith(":") else ".") + str(part)
    return out


def _messages(error: ValidationError) -> list[str]:
    problems: list[str] = []
    for err in error.errors():
        loc = tuple(err["loc"])
        if err["type"] == "ccp_many":
            # A cross-field check reports several problems, each with a path relative to `loc`.
            for line in err["msg"].split("\n"):
                rel, _, text = line.partition(": ")
                base = _path(loc)
                problems.append(f"{base}.{rel}: {text}" if not base.endswith(":") else f"{base}{rel}: {text}")
            continue
        path = _path(loc)
        value = err.get("input")
        if err["type"] == "missing":
            problems.append(f"{path}: is required but missing")
        elif err["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown key (value {value!r}); check its spelling (keys are camelCase)")
        elif err["type"].startswith("ccp_"):
            problems.append(f"{path}: {err['msg']}")
        elif err["type"] in {"literal_error", "enum"}:
            problems.append(f"{path}: {value!r} is not allowed: {err['msg'].removeprefix('Input should be ')}")
        else:
            problems.append(f"{path}: {value!r} is invalid: {err['msg']}")
    return problems


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Validate config values (keys without the `ccp:` prefix) into a StackConfig or raise ConfigError."""
    environment = raw.get("environment")
    try:
        settings = StackConfig.model_validate(dict(raw), context={"environment": environment})
    except ValidationError as error:
        raise ConfigError(_messages(error)) from None
    _check_signature(settings)
    return settings


def _check_signature(settings: StackConfig) -> None:
    """Signed measurements are verified here, before any resource can be declared from them."""
    from components.attestation.signing import SignatureError, verify_measurements

    try:
        verify_measurements(settings.collaboration.measurements, settings.measurement_signers)
    except SignatureError as error:
        raise ConfigError([f"{NAMESPACE}:collaboration.measurements.signature: {error}"]) from None


def from_config_texts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `ccp:` entries of a Pulumi config map (full keys -> text), keys without the namespace.

    Pulumi hands objects and lists to programs as JSON text; they are decoded back to data. Every
    `ccp:` key is kept, known or not, so that `parse` refuses a misspelt key instead of the
    program silently falling back to a default (e.g. `ccp:logRetentionDay` -> 365 days).
    """
    prefix = NAMESPACE + ":"
    raw: dict[str, Any] = {}
    for key, text in config.items():
        if not key.startswith(prefix):
            continue
        try:
            raw[key.removeprefix(prefix)] = json.loads(text) if isinstance(text, str) else text
        except json.JSONDecodeError:
            raw[key.removeprefix(prefix)] = text
    return raw


def _runtime_config() -> dict[str, Any]:
    """Every config entry the Pulumi runtime holds (set by the engine or in `PULUMI_CONFIG`)."""
    from pulumi.runtime import config as runtime

    keys = set(runtime.get_config_env()) | set(runtime.CONFIG.get())
    return {key: runtime.get_config(key) for key in sorted(keys)}


def load() -> StackConfig:
    """Read the `ccp` namespace of the current Pulumi stack's config, with the review's validation.

    `pulumi up` and the offline review both go through `from_config_texts` and `parse`, so a stack
    the review refuses is refused by `pulumi up` with the same messages.
    """
    return parse(from_config_texts(_runtime_config()))


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `ccp:` values of a `Pulumi.<stack>.yaml`, keys without the namespace (for tests and tools)."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    prefix = NAMESPACE + ":"
    return {
        key.removeprefix(prefix): value
        for key, value in (data.get("config") or {}).items()
        if key.startswith(prefix)
    }
