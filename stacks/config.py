"""Typed stack configuration: the Pulumi config namespaces `ccp` and `ccp-*`, validated into one model.

`ccp:*` keys are the collaboration; each component namespace (`ccp-aws:*`, `ccp-azure:*`, `ccp-gcp:*`) is a
typed section of the same model (`StackConfig.aws`, `StackConfig.azure`, `StackConfig.gcp`) passed to the components, which
never read Pulumi config themselves. Unknown keys and unknown `ccp-*` namespaces are refused.

Every invalid value is reported before any resource is declared, one message per problem, naming
the config key (`ccp:collaboration.parties[1].region`), the bad value and what is expected: the
model's own checks first, then (on a valid model) every used cloud's site checks
(`components.site.CLOUDS`), all of them in one run. Whether every party has signed the measurements
(the measurement contract, `components.attestation.contract`) is checked by the review and by
`python -m stacks.contract verify`, not here: an unsigned change is reported with who has and has not
signed, not as an unusable config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final, Mapping

from pulumi.errors import RunError
from pydantic import Field, ValidationError

from components.aws.options import AwsOptions
from components.azure.options import AzureOptions
from components.gcp.options import GcpSiteOptions
from components.model import Collaboration, Environment
from components.regions import Cloud
from components.site import Deployment, clouds_used, site_problems
from enclave_runtime.measurements import Model

NAMESPACE: Final = "ccp"
# Component namespaces: Pulumi config `<namespace>:<key>` -> the StackConfig section of that alias.
SECTIONS: Final[dict[str, Cloud]] = {"ccp-aws": "aws", "ccp-azure": "azure", "ccp-gcp": "gcp"}


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
    # Keys only by their config spelling: `ccp:azure` must not stand in for the `ccp-azure:` section.
    model_config = {**Model.model_config, "populate_by_name": False, "validate_by_name": False, "validate_by_alias": True}

    environment: Environment
    collaboration: Collaboration
    log_retention_days: int = Field(default=365, ge=1, le=3653)
    # Component options: the `ccp-aws:*`, `ccp-azure:*` and `ccp-gcp:*` keys.
    aws: AwsOptions = Field(default_factory=AwsOptions, alias="ccp-aws")
    azure: AzureOptions = Field(default_factory=AzureOptions, alias="ccp-azure")
    gcp: GcpSiteOptions = Field(default_factory=GcpSiteOptions, alias="ccp-gcp")

    def site_options(self) -> dict[Cloud, Any]:
        """Cloud -> its options section, what `Collaboration` hands each cloud's site."""
        return {cloud: getattr(self, cloud) for cloud in SECTIONS.values()}


def _path(loc: tuple[Any, ...]) -> str:
    """`ccp:collaboration.parties[1].region`; a component section's keys as `ccp-azure:addressSpace`."""
    namespace = NAMESPACE
    if loc and loc[0] in SECTIONS:
        namespace, loc = loc[0], loc[1:]
    out = namespace + ":"
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
        elif err["type"] == "extra_forbidden" and len(loc) == 1 and str(loc[0]).startswith(NAMESPACE + "-"):
            problems += _unknown_namespace(str(loc[0]), value)
        elif err["type"] == "extra_forbidden":
            problems.append(f"{path}: unknown key (value {value!r}); check its spelling (keys are camelCase)")
        elif err["type"].startswith("ccp_"):
            problems.append(f"{path}: {err['msg']}")
        elif err["type"] in {"literal_error", "enum"}:
            problems.append(f"{path}: {value!r} is not allowed: {err['msg'].removeprefix('Input should be ')}")
        else:
            problems.append(f"{path}: {value!r} is invalid: {err['msg']}")
    return problems


def _unknown_namespace(namespace: str, value: Any) -> list[str]:
    known = ", ".join(sorted(SECTIONS))
    keys = sorted(value) if isinstance(value, dict) else [""]
    return [
        f"{namespace}:{key}: unknown config namespace {namespace!r}; check its spelling (component "
        f"namespaces: {known})"
        for key in keys
    ]


def parse(raw: Mapping[str, Any], deployment: Deployment = Deployment()) -> StackConfig:
    """Validate config values (keys without the `ccp:` prefix; each component namespace a mapping
    under its name, e.g. `raw["ccp-azure"]`) into a StackConfig or raise ConfigError.

    `deployment`: facts about the deploying credentials some site checks need (unknown by default:
    those checks are skipped; `load` and the review always give them)."""
    settings = validate(raw)
    check(settings, deployment)
    return settings


def validate(raw: Mapping[str, Any]) -> StackConfig:
    """The model's own checks (every field, cross-field and per-section problem at once)."""
    environment = raw.get("environment")
    try:
        return StackConfig.model_validate(dict(raw), context={"environment": environment})
    except ValidationError as error:
        raise ConfigError(_messages(error)) from None


def check(settings: StackConfig, deployment: Deployment = Deployment()) -> None:
    """The checks that need the whole, valid model: every used cloud's site checks (hosts per key
    region, accounts, residency, orchestrator ids, ...), all reported together so one run shows
    every problem."""
    problems = site_problems(
        settings.environment,
        settings.collaboration,
        settings.site_options(),
        deployment,
        settings.log_retention_days,
    )
    if problems:
        # Two hosts can share one problem (e.g. the workload image): it is reported once.
        raise ConfigError(list(dict.fromkeys(problems)))


def _decoded(text: Any) -> Any:
    """Pulumi hands objects and lists to programs as JSON text; they are decoded back to data."""
    try:
        return json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return text


def _ours(values: Mapping[str, Any]) -> dict[str, Any]:
    """The `ccp:` and `ccp-*:` entries of `values` (full keys -> data): `ccp:` keys without the
    namespace, each `ccp-*` namespace as a mapping under its name (`{"ccp-azure": {...}}`).

    Every such key is kept, known or not, so that `parse` refuses a misspelt key (or namespace)
    instead of the program silently falling back to a default (e.g. `ccp:logRetentionDay` -> 365
    days, `ccp-azure:cvmOrchestratorObjectID` -> no orchestrator)."""
    raw: dict[str, Any] = {}
    for key, value in values.items():
        namespace, colon, name = str(key).partition(":")
        if not colon:
            continue
        if namespace == NAMESPACE:
            raw[name] = value
        elif namespace.startswith(NAMESPACE + "-"):
            raw.setdefault(namespace, {})[name] = value
    return raw


def from_config_texts(config: Mapping[str, Any]) -> dict[str, Any]:
    """The `ccp` entries of a Pulumi config map (full keys -> text), decoded, as `parse` takes them."""
    return _ours({key: _decoded(text) for key, text in config.items()})


def _runtime_config() -> dict[str, Any]:
    """Every config entry the Pulumi runtime holds (set by the engine or in `PULUMI_CONFIG`)."""
    from pulumi.runtime import config as runtime

    keys = set(runtime.get_config_env()) | set(runtime.CONFIG.get())
    return {key: runtime.get_config(key) for key in sorted(keys)}


def current_deployment(settings: StackConfig) -> Deployment:
    """The deploying credentials' facts the site checks need: the AWS account and partition when the
    collaboration uses AWS (invokes, answered at preview too; no resource is declared)."""
    if "aws" not in clouds_used(settings.collaboration):
        return Deployment()
    from components.aws.common import Account

    account = Account.current()
    return Deployment(aws_account_id=account.account_id, aws_partition=account.partition)


def load() -> StackConfig:
    """Read the `ccp` namespaces of the current Pulumi stack's config, with the review's validation.

    `pulumi up` and the offline review both go through `from_config_texts`, `validate` and `check`,
    so a stack the review refuses is refused by `pulumi up` with the same messages.
    """
    settings = validate(from_config_texts(_runtime_config()))
    check(settings, current_deployment(settings))
    return settings


def read_stack_file(path: Path) -> dict[str, Any]:
    """The `ccp` values of a `Pulumi.<stack>.yaml` as `parse` takes them (for tests and tools)."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return _ours(data.get("config") or {})
