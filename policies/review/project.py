"""Read a Pulumi project directory and stack config the way the CLI would, without the CLI.

Every problem with these files is a `ProjectError` naming the file (and line where YAML tells us),
the field and the fix: the review must report bad input as input, never as a program crash.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")


class ProjectError(Exception):
    """The program directory or its stack file cannot be reviewed; each problem says why and how to fix it."""

    def __init__(self, *problems: str):
        self.problems = list(problems)
        super().__init__("\n".join(problems))


def shown(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


@dataclass
class Project:
    directory: Path
    name: str
    main: Path
    stack: str
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    stack_file: Path | None = None
    stack_node: yaml.Node | None = None
    # `runtime.options.virtualenv` of Pulumi.yaml (relative to the project directory), if given.
    virtualenv: str | None = None

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

    def where(self, problem: str) -> str:
        """`problem` (starting with a config path such as `ccp:collaboration.parties[1].region: ...`)
        prefixed with the stack file and the line of the deepest part of that path it contains."""
        if self.stack_file is None:
            return problem
        line = self._line(problem.partition(": ")[0])
        return f"{shown(self.stack_file)}{f':{line}' if line else ''}: {problem}"

    def _line(self, path: str) -> int | None:
        """1-based line of config `path` in the stack file, or of its nearest enclosing entry."""
        config = _mapping_value(self.stack_node, "config")
        cut = min((i for i in (path.find("."), path.find("[")) if i > 0), default=len(path))
        key, rest = path[:cut], path[cut:]
        ns, _, bare = key.partition(":")
        found = _mapping_entry(config, key) or (_mapping_entry(config, bare) if ns == self.name else None)
        if found is None:
            return None
        line, node = found[0].start_mark.line + 1, found[1]
        for match in _STEP.finditer(rest):
            name, index = match.groups()
            if index is not None:
                if not isinstance(node, yaml.SequenceNode) or int(index) >= len(node.value):
                    break
                node = node.value[int(index)]
                line = node.start_mark.line + 1
            else:
                entry = _mapping_entry(node, name)
                if entry is None:
                    break
                line, node = entry[0].start_mark.line + 1, entry[1]
        return line


def _mapping_entry(node: yaml.Node | None, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next(((k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None)


def _mapping_value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    entry = _mapping_entry(node, key)
    return entry[1] if entry else None


def _as_config_text(value: Any) -> str:
    """Pulumi config values reach programs as strings; objects and lists as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The data and node tree of a YAML file; unreadable or invalid YAML is a ProjectError at its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ProjectError(f"{shown(path)}: cannot be read ({error}); it must be a UTF-8 YAML file") from None
    try:
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        what = " ".join(str(p) for p in (getattr(error, "context", None), getattr(error, "problem", None)) if p)
        raise ProjectError(f"{shown(path)}{where}: not valid YAML ({what or error}); fix the syntax there") from None


def _line_of(node: yaml.Node | None, key: str) -> str:
    entry = _mapping_entry(node, key)
    return f":{entry[0].start_mark.line + 1}" if entry else ""


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", dict: "a mapping"}.get(type(value), type(value).__name__)


def _manifest(directory: Path) -> tuple[Path, dict[str, Any], yaml.Node | None]:
    manifest = directory / "Pulumi.yaml"
    if not manifest.is_file():
        raise ProjectError(f"{shown(directory)}: no Pulumi.yaml; PROGRAM must be a Pulumi project directory")
    spec, node = _read_yaml(manifest)
    if not isinstance(spec, dict):
        raise ProjectError(f"{shown(manifest)}: must be a mapping with name: and runtime:, got {_kind(spec)}")
    return manifest, spec, node


def _project_name(manifest: Path, spec: dict[str, Any], node: yaml.Node | None) -> str:
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        if "name" not in spec:
            raise ProjectError(f"{shown(manifest)}: name: is required; add `name: <project>` (e.g. `name: ccp`)")
        raise ProjectError(
            f"{shown(manifest)}{_line_of(node, 'name')}: name: {name!r} is not a project name; "
            "give a non-empty string (e.g. `name: ccp`)"
        )
    return name


def _entry(directory: Path, manifest: Path, spec: dict[str, Any], node: yaml.Node | None) -> Path:
    runtime = spec.get("runtime")
    runtime_name = runtime.get("name") if isinstance(runtime, dict) else runtime
    if runtime_name != "python":
        raise ProjectError(
            f"{shown(manifest)}{_line_of(node, 'runtime')}: runtime: {runtime_name!r} is not supported offline; "
            "the review runs Python programs (runtime: python)"
        )
    main_field = spec.get("main", ".")
    if not isinstance(main_field, str):
        raise ProjectError(
            f"{shown(manifest)}{_line_of(node, 'main')}: main: {main_field!r} must be a path (a string)"
        )
    main = directory / main_field
    entry = main / "__main__.py" if main.is_dir() else main
    if not entry.is_file():
        raise ProjectError(
            f"{shown(manifest)}{_line_of(node, 'main')}: main: program entry {entry} does not exist; "
            "point main: at the program's directory or file"
        )
    return entry


def _virtualenv(manifest: Path, spec: dict[str, Any], node: yaml.Node | None) -> str | None:
    runtime = spec.get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    venv = options.get("virtualenv") if isinstance(options, dict) else None
    if venv is not None and (not isinstance(venv, str) or not venv.strip()):
        raise ProjectError(
            f"{shown(manifest)}{_line_of(node, 'runtime')}: runtime.options.virtualenv: {venv!r} must be a "
            "directory path (a string), e.g. `virtualenv: venv`"
        )
    return venv


def _stack_values(stack_file: Path) -> tuple[dict[Any, Any], yaml.Node | None]:
    data, node = _read_yaml(stack_file)
    if data is None:
        return {}, node
    if not isinstance(data, dict):
        raise ProjectError(f"{shown(stack_file)}: must be a mapping with a config: section, got {_kind(data)}")
    values = data.get("config")
    if values is None:
        return {}, node
    if not isinstance(values, dict):
        raise ProjectError(
            f"{shown(stack_file)}{_line_of(node, 'config')}: config: must be a mapping of `namespace:key: value` "
            f"entries, got {_kind(values)}; remove the leading '- ' of each entry"
        )
    return values, node


def load(directory: Path, stack: str) -> Project:
    directory = directory.resolve()
    manifest, spec, manifest_node = _manifest(directory)
    name = _project_name(manifest, spec, manifest_node)
    entry = _entry(directory, manifest, spec, manifest_node)

    stack_file = directory / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in directory.glob("Pulumi.*.yaml"))
        raise ProjectError(
            f"{shown(directory)}: no stack file Pulumi.{stack}.yaml (stacks here: {', '.join(known) or 'none'})"
        )
    values, node = _stack_values(stack_file)
    project = Project(directory=directory, name=name, main=entry, stack=stack, stack_file=stack_file, stack_node=node,
                      virtualenv=_virtualenv(manifest, spec, manifest_node))
    bad_keys = [key for key in values if not isinstance(key, str) or not key]
    if bad_keys:
        raise ProjectError(
            *(f"{shown(stack_file)}: config key {key!r} is not a name; write `namespace:key`" for key in bad_keys)
        )
    for key, value in values.items():
        full = key if ":" in key else f"{project.name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Encrypted with the stack's secrets provider, which is not reachable offline.
            project.config[full] = "[secret]"
            project.secret_keys.append(full)
        else:
            project.config[full] = _as_config_text(value)
    return project
