"""Scaffold a new collaboration: `python -m stacks.new_collaboration NAME [--from banks]`.

A collaboration is one stack config file, `Pulumi.<NAME>.yaml` at the repository root. This command
copies an existing one (comments included), renames the collaboration to NAME, checks that the result
is a valid ccp configuration, and writes it — never over an existing file. Then edit the parties,
hosts and measurements and review it offline with `make review STACK=<NAME>`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

import yaml

from stacks import config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = "banks"
_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


class ScaffoldError(Exception):
    pass


def stack_file(name: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{name}.yaml"


def templates(root: Path = ROOT) -> list[str]:
    """Stack files usable as templates: every ccp stack config at the root."""
    names = []
    for path in sorted(root.glob("Pulumi.*.yaml")):
        if "collaboration" in config.read_stack_file(path):
            names.append(path.name.removeprefix("Pulumi.").removesuffix(".yaml"))
    return names


def rename(text: str, new_name: str) -> str:
    """Replace the collaboration's `name:` (the first one under `ccp:collaboration:`), keeping comments."""
    anchor = text.find("ccp:collaboration:")
    if anchor < 0:
        raise ScaffoldError("the template has no ccp:collaboration")
    child = re.compile(r"^(?P<indent>[ ]+)[A-Za-z]", re.MULTILINE).search(text, anchor)
    if child is None:
        raise ScaffoldError("the template's ccp:collaboration is empty")
    indent = child["indent"]
    found = re.compile(rf"^{indent}name:[ ]*(?P<value>[^\s#]+)", re.MULTILINE).search(text, anchor)
    if found is None:
        raise ScaffoldError("the template's collaboration has no name")
    return text[: found.start("value")] + new_name + text[found.end("value") :]


def scaffold(name: str, template: str = DEFAULT_TEMPLATE, root: Path = ROOT) -> Path:
    """Write Pulumi.<name>.yaml from Pulumi.<template>.yaml; refuse to overwrite; validate first."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"'{name}' is not a valid collaboration name: use 3-32 lowercase letters, digits and "
            "hyphens, starting with a letter"
        )
    source = stack_file(template, root)
    if not source.is_file():
        raise ScaffoldError(
            f"no template Pulumi.{template}.yaml; available: {', '.join(templates(root)) or 'none'}"
        )
    target = stack_file(name, root)
    if target.exists():
        raise ScaffoldError(f"{target.name} already exists: choose another name or edit that file")
    text = f"# Scaffolded from {source.name} by `python -m stacks.new_collaboration {name} --from {template}`.\n"
    text += rename(source.read_text(), name)
    data = yaml.safe_load(text) or {}
    prefix = config.NAMESPACE + ":"
    raw = {k.removeprefix(prefix): v for k, v in (data.get("config") or {}).items() if k.startswith(prefix)}
    config.parse(raw)  # a scaffold that would not review is never written
    with target.open("x") as handle:  # "x": fails if the file appeared meanwhile
        handle.write(text)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stacks.new_collaboration",
        description="Create Pulumi.<NAME>.yaml for a new collaboration from an existing stack config.",
    )
    parser.add_argument("name", help="collaboration and stack name (3-32 of a-z, 0-9, -)")
    parser.add_argument(
        "--from",
        dest="template",
        default=DEFAULT_TEMPLATE,
        help=f"stack config to start from (default {DEFAULT_TEMPLATE}; e.g. hospitals, dev)",
    )
    args = parser.parse_args(argv)
    try:
        path = scaffold(args.name, args.template)
    except (ScaffoldError, config.ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"created {path.name} from Pulumi.{args.template}.yaml")
    print("next: edit its parties (each with its own measurementSigningKey: the template's are EXAMPLE keys),")
    print("workload hosts and measurements; have every party sign the measurements")
    print(f"  python -m stacks.contract sign --stack {args.name} --party PARTY --key PARTY-KEY.pem")
    print("then")
    print(f"  make review STACK={args.name}")
    print(f"with the Pulumi CLI: pulumi stack init {args.name} && pulumi preview --stack {args.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
