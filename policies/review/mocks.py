"""Recording mocks: run a Pulumi program in-process and keep every resource it declares.

The SDK's `MockMonitor` forgets parents and dependencies; the review and stack policies need the
tree, so `RecordingMonitor` keeps each `RegisterResource` request as the engine would have seen it.
Tests of components use the same mocks as the review, so what a test asserts is what review checks.

This module needs only the standard library, the `pulumi` SDK (and its protobuf) and `fakes/`: the
review runs programs in their own environment with a copy of it (`policies/review/sandbox.py`).
The review runs programs as a preview (`preview=True`): outputs the mocks leave empty are unknown,
as `pulumi preview` gives them, and `pulumi.runtime.is_dry_run()` is true.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

# Relative, so that this module and `fakes/` can be shipped into a program's own environment
# (policies/review/sandbox.py) where `policies` may be the program's own package, or not exist.
from .fakes import aws as fake_aws
from . import fakes
from .fakes import cloud_outputs, invoke_answer
from .tokens import canonical_type

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = rpc.UNKNOWN


@dataclass
class RecordedResource:
    """One `RegisterResource` request: `properties` is the wire form (secrets still wrapped)."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    provider: str | None
    properties: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> dict[str, Any]:
        """Inputs as plain data: secrets become "[secret]", unknowns "[unknown]" (for reports)."""
        return redact(self.properties)


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            return "[secret]"
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    return value


def unwrap(value: Any) -> Any:
    """Inputs as the program meant them (secrets unwrapped), for component tests."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def unwrapped(resource: "RecordedResource") -> dict[str, Any]:
    """A recorded resource's inputs as the program meant them (what the review's analyses read)."""
    return unwrap(resource.properties)


def dig(data: Any, path: str) -> Any:
    """The value at dotted `path` in nested mappings; None where a step is missing or not a mapping."""
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


class CcpMocks(pulumi_mocks.Mocks):
    """Answers resource registrations and invokes with plausible, deterministic values.

    An explicit `aws` provider (a party's own-account provider) is remembered by its id, so the
    resources declared with it get ARNs in that provider's account, as AWS would give them.

    Computed outputs under `preview` (the review): what the fakes answer (ids, ARNs, some endpoints)
    is known; a provider-filled name the program left unset (`name`, an S3 bucket's `bucket`, where
    the SDK's resource class declares it: `fakes.schema.provider_names`) gets the logical name; every
    other output the mocks leave empty stays unknown, as in `pulumi preview`. Why names and nothing
    more: a real preview knows auto-names (the provider computes them before creating anything), and
    with them unknown a program that declares resources inside an `apply` on a name
    (`queue.name.apply(lambda n: Alarm(...))`, tests/review/programs/computed_names) loses those
    resources from the review without a word, where `pulumi preview` shows them. Placeholders for
    ids/ARNs/endpoints beyond the fakes' would make the review see what a preview of a new stack does
    not, and no program tested needed them: formatting or combining an unknown gives an unknown
    (reported "[unknown]"), it does not stop the program. Policies never see outputs: they read the
    inputs the program declared (`RecordedResource.properties`), so a filled name is never taken as a
    setting (tests/review/test_review_programs.py::test_policies_see_only_declared_inputs).
    """

    def __init__(self, preview: bool = False) -> None:
        self.provider_accounts: dict[str, str] = {}
        self.preview = preview

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str, dict]:
        resource_id = args.resource_id or f"{args.name}-id"
        state = dict(args.inputs)
        if args.typ == "pulumi:providers:aws":
            account = fake_aws.provider_account(args.inputs)
            if account is not None:
                self.provider_accounts[resource_id] = account
        reference = args.provider or ""
        account = self.provider_accounts.get(reference.rsplit("::", 1)[-1]) if reference else None
        state.update(cloud_outputs(args.typ, args.name, args.inputs, resource_id, account))
        if self.preview:
            state.update(fakes.schema.provider_names(args.typ, args.name, state))
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> dict:  # type: ignore[override]
        return invoke_answer(args.token, args.args)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks: pulumi_mocks.Mocks | None = None):
        super().__init__(mocks or CcpMocks())
        self.recorded: list[RecordedResource] = []
        self.stack_urn: str | None = None

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        self.recorded.append(
            RecordedResource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent or None,
                dependencies=list(request.dependencies),
                property_dependencies={
                    k: list(v.urns) for k, v in request.propertyDependencies.items()
                },
                provider=request.provider or None,
                properties=json_format.MessageToDict(request.object),
                outputs=self.resources[response.urn].state,
            )
        )
        return response


def _plain(value: Any) -> Any:
    """Mock state as JSON data: SDK objects it may hold (resource references, assets, unknowns)
    become a "[TypeName]" marker; secrets keep their wire-form marker (see `redact`)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return f"[{type(value).__name__}]"


@dataclass
class Recording:
    stack_urn: str | None
    resources: list[RecordedResource]
    # Invokes answered by schema placeholders (`fakes.placeholder_invokes`): [{token, function, result_type, count}].
    placeholder_invokes: list[dict[str, Any]] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form (what a sandboxed run sends back); `from_data` reads it."""
        return {
            "stack_urn": self.stack_urn,
            "placeholder_invokes": self.placeholder_invokes,
            "resources": [
                {
                    "urn": r.urn, "type": r.type, "name": r.name, "custom": r.custom, "parent": r.parent,
                    "dependencies": r.dependencies, "property_dependencies": r.property_dependencies,
                    "provider": r.provider, "properties": r.properties, "outputs": _plain(r.outputs),
                }
                for r in self.resources
            ],
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> "Recording":
        return cls(
            data.get("stack_urn"),
            [RecordedResource(**r) for r in data["resources"]],
            list(data.get("placeholder_invokes") or []),
        )

    def of_type(self, type_: str) -> list[RecordedResource]:
        """Resources of `type_`, an azure-native resource pinned to an API version included (`canonical_type`):
        every lookup the review makes by type (key release, operator paths, disks) sees it."""
        return [r for r in self.resources if canonical_type(r.type) == type_]

    def one(self, type_: str) -> RecordedResource:
        found = self.of_type(type_)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_}, found {len(found)}")
        return found[0]

    def named(self, name: str) -> RecordedResource:
        for resource in self.resources:
            if resource.name == name:
                return resource
        raise AssertionError(f"no resource named {name!r} was declared")


def run(
    program: Callable[[], Any],
    *,
    project: str = "ccp",
    stack: str = "test",
    config: dict[str, str] | None = None,
    secret_keys: list[str] | None = None,
    preview: bool = False,
) -> Recording:
    """Run `program` as a Pulumi program under recording mocks and return what it declared.

    `preview`: run as `pulumi preview` would (what the review does): `is_dry_run()` is true and
    outputs the mocks leave empty (None or absent) are unknown, so `apply` callbacks on them do not
    run. Component tests keep the default (as `pulumi up`: every output known, missing ones None).

    Raises whatever the program raises (after the runtime has settled), so config errors surface
    as themselves.
    """
    from pulumi.runtime.config import set_all_config

    set_all_config(dict(config or {}), secret_keys or [])
    fakes.reset_placeholders()
    mocks = CcpMocks(preview=preview)
    monitor = RecordingMonitor(mocks)
    settings.set_root_resource(None)  # type: ignore[arg-type]  # set_mocks then makes a fresh Stack
    pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    # Older SDKs (a program's own environment may pin one) lack some of these.
    for name in ("rpc_manager", "outputs"):
        pending = getattr(settings.SETTINGS, name, None)
        if pending is not None:
            pending.clear()
    _sync_await(run_pulumi_func(program))
    return Recording(monitor.stack_urn, monitor.recorded, fakes.placeholder_invokes())


@contextlib.contextmanager
def _program_context(directory: Path) -> Iterator[None]:
    """Pulumi runs a program from its own directory, with that directory importable."""
    cwd = os.getcwd()
    sys.path.insert(0, str(directory))
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(directory))


class ProgramExit(Exception):
    """The program ended itself (`sys.exit`, `KeyboardInterrupt`, ...) before the review finished.

    A plain Exception, so it cannot end the review process: whatever status the program asked for,
    the review reports it as a failed program (exit 2) instead of passing CI with exit 0 or exiting
    with a status that means something else. `os._exit` ends the process at once and cannot be caught.
    """

    def __init__(self, message: str, where: str = ""):
        self.where = where
        super().__init__(message)


def _origin(error: BaseException) -> str:
    """`file:line` of the innermost frame outside installed packages and the runpy machinery."""
    frames = [
        f for f in traceback.extract_tb(error.__traceback__)
        if "site-packages" not in f.filename and not f.filename.startswith("<")
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _program_exit(error: BaseException) -> ProgramExit:
    if isinstance(error, SystemExit):
        code = error.code
        status = code if isinstance(code, int) else 0 if code is None else f"1 ({code})"
        return ProgramExit(f"the program exited with status {status} (sys.exit) before the review finished",
                           _origin(error))
    return ProgramExit(
        f"the program stopped with {type(error).__name__} before the review finished", _origin(error)
    )


@contextlib.contextmanager
def _guard() -> Iterator[None]:
    """Turn the exceptions that end a process (`SystemExit`, `KeyboardInterrupt`)
    into `ProgramExit`, wherever in the program (top level or an `apply` callback) they are raised."""
    try:
        yield
    except ProgramExit:
        raise
    except (SystemExit, KeyboardInterrupt) as error:
        raise _program_exit(error) from None


def _guarded(entry: Path) -> Callable[[], Any]:
    def program() -> Any:
        with _guard():
            return runpy.run_path(str(entry), run_name="__main__")

    return program


def run_directory(main: Path, **kwargs: Any) -> Recording:
    """Run a Pulumi Python program directory (its `__main__.py`) under recording mocks."""
    entry = main / "__main__.py" if main.is_dir() else main
    with _program_context(entry.parent), _guard():
        return run(_guarded(entry), **kwargs)
