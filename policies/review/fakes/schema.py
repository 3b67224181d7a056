"""Generic invoke answers from the provider's own Python SDK: shape-correct, deterministic placeholders.

Every Pulumi provider SDK ships, for each data source, a typed result class (`@pulumi.output_type`,
e.g. `pulumi_aws.ec2.GetAmiResult`) whose `@pulumi.getter` properties carry the wire names and Python
types of the result's fields. An invoke token names its function (`aws:ec2/getAmi:getAmi` ->
`pulumi_aws.ec2.get_ami` -> `GetAmiResult`; `azure-native:network/v20230201:getPublicIPAddress` ->
`pulumi_azure_native.network.v20230201.GetPublicIPAddressResult`; `aws:index/getRegion:getRegion` ->
`pulumi_aws.GetRegionResult`), so an invoke no hand-written fake answers still gets a well-formed result:
strings `placeholder-<field>`, numbers 0, booleans False, lists and maps empty, enums their first
value, nested result types filled the same way (a type met again inside itself is None).

The provider SDK is the program's own (this runs inside the program's interpreter, see
`policies/review/sandbox.py`): the placeholders have the shape of the version the program uses.
Standard library and the `pulumi` SDK only; Python 3.9+.
"""

from __future__ import annotations

import enum
import importlib
import typing
from typing import Any

PLACEHOLDER_PREFIX = "placeholder-"


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def function_path(token: str) -> tuple[str, str, str] | None:
    """(Python module, function name, result class name) for an invoke token, or None if malformed."""
    parts = token.split(":")
    if len(parts) != 3 or not all(parts):
        return None
    package, middle, function = parts
    segments = middle.split("/")
    # aws/gcp style `ec2/getAmi`: the last segment is the function's file; azure-native style
    # `network` or `network/v20230201`: every segment is a module.
    if len(segments) > 1 and _lower_first(segments[-1]) == _lower_first(function):
        segments = segments[:-1]
    segments = [s for s in segments if s != "index"]
    module = ".".join(["pulumi_" + package.replace("-", "_"), *(s.replace("-", "_") for s in segments)])
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in _lower_first(function))
    return module, snake, function[:1].upper() + function[1:] + "Result"


def result_class(token: str) -> tuple[str, type] | None:
    """(`module.function` as a program calls it, result class) for a token, or None when the program's
    environment has no such module or no typed result class for it."""
    from pulumi import _types

    path = function_path(token)
    if path is None:
        return None
    module_name, function, class_name = path
    try:
        module = importlib.import_module(module_name)
    except Exception:  # noqa: BLE001 - a missing or broken provider module: no schema to answer from
        return None
    found = getattr(module, class_name, None)
    if found is None:  # acronyms spelt differently (`getPublicIpAddress` / `GetPublicIPAddressResult`)
        wanted = class_name.lower()
        found = next((v for k, v in vars(module).items() if k.lower() == wanted and isinstance(v, type)), None)
    if not isinstance(found, type) or not _types.is_output_type(found):
        return None
    # The function as the SDK spells it (`getPublicIPAddress` -> `get_public_ip_address`).
    wanted = function.replace("_", "")
    function = next((k for k in vars(module) if k.replace("_", "") == wanted and callable(vars(module)[k])), function)
    return f"{module_name}.{function}", found


def placeholder(typ: Any, field: str, seen: tuple[type, ...] = ()) -> Any:
    """A deterministic value of type `typ` (as `pulumi._types.output_type_types` gives it) for `field`."""
    from pulumi import _types

    origin = typing.get_origin(typ)
    if origin is typing.Union:
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return placeholder(args[0], field, seen) if args else None
    if origin is not None:
        if isinstance(origin, type) and issubclass(origin, (str, bytes)):
            return f"{PLACEHOLDER_PREFIX}{field}"
        if isinstance(origin, type) and issubclass(origin, typing.Mapping):  # type: ignore[arg-type]
            return {}
        if isinstance(origin, type) and issubclass(origin, (list, tuple, set, typing.Sequence)):  # type: ignore[arg-type]
            return []
        return None
    if not isinstance(typ, type):
        return None  # Any, forward references the SDK could not resolve
    if issubclass(typ, bool):
        return False
    if issubclass(typ, enum.Enum):
        first = next(iter(typ), None)
        return first.value if first is not None else None
    if issubclass(typ, str):
        return f"{PLACEHOLDER_PREFIX}{field}"
    if issubclass(typ, (int, float)):
        return typ(0)
    if _types.is_output_type(typ):  # before dict: output types are dicts too
        if typ in seen:
            return None
        return fields(typ, seen + (typ,))
    if issubclass(typ, dict):
        return {}
    if issubclass(typ, (list, tuple)):
        return []
    return None


def fields(result_type: type, seen: tuple[type, ...] = ()) -> dict[str, Any]:
    """Every field of an output type (wire names) with its placeholder."""
    from pulumi import _types

    types = _types.output_type_types(result_type)
    return {name: placeholder(typ, name, seen or (result_type,)) for name, typ in sorted(types.items())}


def answer(token: str) -> tuple[str, str, dict[str, Any]] | None:
    """(function, result class name, placeholder result) for an invoke token, or None (no schema)."""
    found = result_class(token)
    if found is None:
        return None
    function, cls = found
    try:
        return function, cls.__name__, fields(cls)
    except Exception:  # noqa: BLE001 - type hints the SDK itself cannot resolve: no schema to answer from
        return None


def resource_class(type_: str) -> type | None:
    """The SDK's resource class for a resource type token (`aws:sqs/queue:Queue` -> `pulumi_aws.sqs.Queue`)."""
    path = function_path(type_)
    if path is None or type_.startswith("pulumi:"):
        return None
    try:
        module = importlib.import_module(path[0])
    except Exception:  # noqa: BLE001 - a provider module the program's environment lacks
        return None
    found = getattr(module, type_.rsplit(":", 1)[-1], None)
    return found if isinstance(found, type) else None


# Outputs a provider fills with the resource's auto-name when the program does not set them (`name`;
# S3 buckets' `bucket`). A real `pulumi preview` knows these (the provider computes the auto-name in
# Check, before anything is created), unlike ids, ARNs and endpoints.
_NAME_OUTPUTS = {"aws:s3/bucket:Bucket": "bucket", "aws:s3/bucketV2:BucketV2": "bucket"}


def provider_names(type_: str, name: str, state: dict[str, Any]) -> dict[str, Any]:
    """{output: value} for the provider-filled name the program left unset (and the SDK's resource
    class declares): the logical name, as the hand-written fakes give it (`fakes/aws.py`)."""
    output = _NAME_OUTPUTS.get(type_, "name")
    if state.get(output) is not None:
        return {}
    cls = resource_class(type_)
    prop = getattr(cls, output.split(".")[0], None) if cls is not None else None
    if not isinstance(prop, property) or getattr(prop.fget, "_pulumi_name", None) != output:
        return {}
    return {output: name}
