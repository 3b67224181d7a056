"""Compare the measurements `make measurements` computed from the image build with the stack's signed contract.

    .venv/bin/python tools/compare_measurements.py --stack prod [--contract F] [--computed F] [--github]

Reads `stacks/contracts/<stack>.json` (what every party signed: `measurements` and their `digest`) and the
file `make measurements STACK=<stack>` wrote: `out/measurements-<stack>.yaml` when it computed everything,
else `out/measurements-<stack>.partial.yaml` (what it computed, and as comments what it could not and why).

Every field of the contract's measurements (`version`, a label, excepted) is compared with the computed value:
- exit 0: every field was computed and equals the contract; the computed set, under the contract's version,
  has the contract's digest;
- exit 1: a computed field differs from the contract (each is named, with both values), or the inputs cannot
  be compared (no contract, no computed file, a contract whose digest is not that of its own measurements);
- exit 2: no field differs, but some were not computed (placeholder base-image digest, a missing tool such as
  nitro-cli or `az confcom`) or the measuring tool refused the build: each is named with the reason, and no
  match is claimed.
Fields computed but absent from the contract (a register the stack does not pin) are listed, not compared.
`--github` also prints GitHub Actions annotations (::error for a difference, ::notice for what was not computed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.attestation.contract import digest_of  # noqa: E402

EQUAL, DIFFERENT, NOT_COMPUTED = 0, 1, 2
INCOMPLETE_MARK = "# INCOMPLETE - NOT FOR SIGNING. Not computed:"
REFUSED = "REFUSED: "


@dataclass
class Comparison:
    equal: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)  # "<field>: contract X, computed Y"
    not_computed: list[str] = field(default_factory=list)  # "<field>: why"
    refused: list[str] = field(default_factory=list)  # the measuring tool's refusals (the build is not signable)
    extra: list[str] = field(default_factory=list)  # computed, not in the contract
    errors: list[str] = field(default_factory=list)  # the inputs cannot be compared
    digest: str | None = None  # the computed set's digest under the contract's version, when complete

    @property
    def status(self) -> int:
        if self.errors or self.different:
            return DIFFERENT
        if self.not_computed or self.refused:
            return NOT_COMPUTED
        return EQUAL


def fields(measurements: dict[str, Any]) -> dict[str, Any]:
    """`section.key` -> value of a measurements mapping (the `version` label left out)."""
    out: dict[str, Any] = {}
    for section, values in measurements.items():
        if section == "version":
            continue
        if isinstance(values, dict):
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        else:
            out[section] = values
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return a == b


def _shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:60] + "…" + text[-20:]


def read_computed(path: Path) -> tuple[dict[str, Any], list[str], list[str]]:
    """The computed measurements, the tool's "not computed" lines and its refusals (from a partial file)."""
    text = path.read_text()
    document = yaml.safe_load(text) or {}
    measurements = document.get("measurements") if isinstance(document, dict) else None
    if not isinstance(measurements, dict):
        raise ValueError(f"{path}: no `measurements:` mapping (not written by `make measurements`)")
    missing: list[str] = []
    refused: list[str] = []
    listing = False
    for line in text.splitlines():
        if line.strip() == INCOMPLETE_MARK:
            listing = True
            continue
        if listing and line.startswith("#   - "):
            entry = line[len("#   - "):].strip()
            (refused if entry.startswith(REFUSED) else missing).append(entry.removeprefix(REFUSED))
        elif listing and not line.startswith("#"):
            listing = False
    return measurements, missing, refused


def _reason(name: str, missing: list[str]) -> str:
    """Why the tool did not compute `section.key`: its own line ("nitro.pcr0/pcr1/pcr2: ..."), else a default."""
    section, _, key = name.partition(".")
    for line in missing:
        head, _, why = line.partition(":")
        if head.startswith(f"{section}.") and key in head[len(section) + 1:].split("/"):
            return why.strip()
    for line in missing:  # a field derived from the section's values (nitro.pin): the section's reason
        head, _, why = line.partition(":")
        if head.startswith(f"{section}."):
            return f"its section was not computed ({head}: {why.strip()})"
    return "not in the computed set (see the `make measurements` output)"


def compare(
    contract: dict[str, Any], computed: dict[str, Any], missing: Sequence[str] = (), refused: Sequence[str] = ()
) -> Comparison:
    result = Comparison(refused=list(refused))
    signed = contract.get("measurements")
    if not isinstance(signed, dict) or not contract.get("digest"):
        result.errors.append("the contract has no measurements or no digest")
        return result
    if digest_of(signed) != contract["digest"]:
        result.errors.append(
            f"the contract's digest {contract['digest']} is not the digest of its own measurements "
            f"({digest_of(signed)}): run `python -m stacks.contract verify`"
        )
        return result
    expected, found = fields(signed), fields(computed)
    for name, value in expected.items():
        if name not in found:
            result.not_computed.append(f"{name}: {_reason(name, list(missing))}")
        elif _same(value, found[name]):
            result.equal.append(name)
        else:
            result.different.append(f"{name}: the contract has {_shown(value)}, the build gives {_shown(found[name])}")
    result.extra = sorted(set(found) - set(expected))
    if result.status == EQUAL:
        rebuilt: dict[str, Any] = {"version": signed.get("version")}
        for section, values in signed.items():
            if section != "version":
                rebuilt[section] = {k: computed[section][k] for k in values} if isinstance(values, dict) else computed[section]
        result.digest = digest_of(rebuilt)
        if result.digest != contract["digest"]:  # unreachable when every field is equal; kept as the last word
            result.different.append(f"digest: the contract has {contract['digest']}, the build gives {result.digest}")
    return result


def report(stack: str, result: Comparison, github: bool = False) -> list[str]:
    lines = [f"measurements of stack {stack}: the image build against stacks/contracts/{stack}.json"]
    lines += [f"  equal          {name}" for name in result.equal]
    lines += [f"  DIFFERENT      {line}" for line in result.different]
    lines += [f"  NOT COMPUTED   {line}" for line in result.not_computed]
    lines += [f"  REFUSED BUILD  {line}" for line in result.refused]
    lines += [f"  not compared   {name} (computed; the contract does not list it)" for name in result.extra]
    lines += [f"  ERROR          {line}" for line in result.errors]
    if result.status == EQUAL:
        lines.append(f"MATCH: every signed measurement was recomputed from the build; digest {result.digest}")
    elif result.status == DIFFERENT:
        lines.append("MISMATCH: the build does not give the measurements the parties signed")
    else:
        lines.append("NOT VERIFIED: some signed measurements were not computed from this build; no match is claimed")
    if github:
        for line in result.errors + result.different:
            lines.append(f"::error title=measurements differ ({stack})::{line}")
        for line in result.not_computed + [f"refused: {r}" for r in result.refused]:
            lines.append(f"::notice title=measurement not computed ({stack})::{line}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/compare_measurements.py", description=__doc__.splitlines()[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--contract", type=Path, help="default: stacks/contracts/<stack>.json")
    p.add_argument("--computed", type=Path, help="default: out/measurements-<stack>.yaml, else its .partial.yaml")
    p.add_argument("--github", action="store_true", help="print GitHub Actions annotations too")
    args = p.parse_args(argv)
    contract_path = args.contract or ROOT / f"stacks/contracts/{args.stack}.json"
    computed_path = args.computed
    if computed_path is None:
        full = ROOT / f"out/measurements-{args.stack}.yaml"
        computed_path = full if full.exists() else full.with_name(f"measurements-{args.stack}.partial.yaml")
    result = Comparison()
    try:
        contract = json.loads(contract_path.read_text())
        computed, missing, refused = read_computed(computed_path)
    except FileNotFoundError as exc:
        result.errors.append(f"{exc.filename}: no such file (run `make measurements STACK={args.stack}` first)")
    except (ValueError, yaml.YAMLError) as exc:
        result.errors.append(str(exc))
    else:
        result = compare(contract, computed, missing, refused)
    print("\n".join(report(args.stack, result, args.github)))
    return result.status


if __name__ == "__main__":
    raise SystemExit(main())
