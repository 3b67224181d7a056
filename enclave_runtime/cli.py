"""`python -m enclave_runtime verify`: the contract reviewers and CI use.

Exit codes: 0 verified (and allowed, when a policy is given), 1 rejected (verification or validation
failed), 2 unusable input or usage. With `--json` the output is exactly one JSON object, whatever
happens; without it, one human-readable summary. Never a traceback: an unexpected exception is
reported as check `internal` with exit 2, so a caller can tell "rejected" from "could not judge".

`python -m enclave_runtime audit verify FILE [--json]` follows the same contract for an audit log
(`enclave_runtime.audit`): 0 the chain verifies (also when only its last line was cut short by a crash,
reported as `truncated`), 1 tampered (the line and the check named), 2 unusable input.

`python -m enclave_runtime seal --stack STACK --party NAME --dataset NAME --input FILE --output FILE
--key-id ID [--endpoint URL] [--access-token-env VAR] [--ca-file PEM] [--json]` is the party side:
it seals a dataset file for the collaboration under the party's key, with the party's own
credentials (`enclave_runtime.keyrelease.factory`). 0 sealed, 1 the key service refused (e.g. the
caller is not the party's data owner; the service's reason is shown), 2 unusable input (the field,
the value and the fix named). With `--json`: on success exactly `{"sealed", "collaboration", "party",
"dataset", "keyId", "bytes"}` (`bytes`: plaintext bytes sealed), otherwise `{"sealed": null,
"error": {"check", "field", "message"}}`. The stack file is read with PyYAML, not Pulumi: the
runtime image has neither Pulumi nor the `stacks`/`components` packages.

`python -m enclave_runtime serve [--simulate ...]` runs the attested query service inside the TEE and
`python -m enclave_runtime query URL --policy FILE (--infer JSON | --output NAME | ...) [--json]` verifies
it and queries it (0 answered, 1 refused with the failed check named, 2 unusable input); both are in
`enclave_runtime.serve.commands`.

`python -m enclave_runtime flower superlink|supernode ...` starts Flower's SuperLink with a TLS key bound to
the TEE's evidence, or a party's SuperNode once that evidence is admitted (`enclave_runtime.ml.launcher`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Any, NoReturn

from .attest import KINDS, Collateral, TrustStore, VerificationError, verify
from .attest.collateral import AMD_SERIAL_ZERO_WARNING
from .attest.claims import Claims
from pydantic import ValidationError

from .policy import Binding, Decision, Policy, PolicyError, validate

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2


class UsageParser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2, under `--json` in the subcommand's own output shape
    (each subcommand's parser overrides `usage_json`), so a caller parsing JSON never gets argparse text."""

    def __init__(self, *args: Any, json_output: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_output = json_output

    def usage_json(self, message: str) -> None:
        _emit_json(None, {"check": "usage", "message": message}, None, None)

    def error(self, message: str) -> NoReturn:
        if self.json_output:
            self.usage_json(message)
        else:
            self.print_usage(sys.stderr)
            print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNUSABLE)



def _time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 time (e.g. 2024-01-01T00:00:00Z)") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone: add Z or +00:00")
    return parsed.astimezone(dt.timezone.utc)


def build_parser(json_output: bool = False) -> UsageParser:
    parser = UsageParser(prog="python -m enclave_runtime", description=__doc__.splitlines()[0], json_output=json_output)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=partial(UsageParser, json_output=json_output)
    )
    cmd = commands.add_parser("verify", help="verify attestation evidence, optionally validate it against a policy")
    cmd.add_argument("--kind", required=True, choices=sorted(KINDS))
    cmd.add_argument("--evidence", required=True, type=Path, help="evidence file: binary, hex, base64 or JSON")
    cmd.add_argument(
        "--with", dest="with_files", action="append", default=[], type=Path, metavar="FILE",
        help="certificates / chains / CRLs / collateral / JWKS that come with the evidence (repeatable)",
    )
    cmd.add_argument("--at", type=_time, help="verification time, ISO-8601 with zone (default: now)")
    cmd.add_argument("--policy", type=Path, help="policy document or Pulumi stack file (ccp:collaboration.measurements)")
    cmd.add_argument("--trust-dir", type=Path, help="directory of certificates used to complete chains (trusts nothing by itself)")
    cmd.add_argument(
        "--trust-simulation-root", type=Path, action="append", default=[], metavar="FILE",
        help="accept evidence from the simulated TEE with this root (a prod policy still refuses it)",
    )
    cmd.add_argument("--report-data", help="expected report data (hex); overrides the policy's binding")
    cmd.add_argument("--nonce", help="expected nonce (hex, or a token's nonce text); overrides the policy's binding")
    cmd.add_argument("--json", action="store_true", help="print one JSON object")
    audit = commands.add_parser("audit", help="audit log tools")
    audit_commands = audit.add_subparsers(
        dest="audit_command", required=True, parser_class=partial(_AuditParser, json_output=json_output)
    )
    audit_verify = audit_commands.add_parser("verify", help="verify an audit log's hash chain and signatures")
    audit_verify.add_argument("file", type=Path, help="the audit log (JSON lines)")
    audit_verify.add_argument("--json", action="store_true", help="print one JSON object")
    _add_seal_arguments(commands.add_parser("seal", help=SEAL_HELP))
    # serve / query parse their own arguments (enclave_runtime.serve.commands); listed here for --help.
    commands.add_parser("serve", help="serve the model and outputs over attested TLS 1.3 (inside the TEE)", add_help=False)
    commands.add_parser("query", help="verify the attested service, then query it (client side)", add_help=False)
    # flower parses its own arguments too (enclave_runtime.ml.launcher).
    commands.add_parser("flower", help="start Flower's SuperLink or a SuperNode behind attestation (inside the TEE)",
                        add_help=False)
    return parser


class _AuditParser(UsageParser):
    """Usage errors under `audit` in the audit output's shape."""

    def usage_json(self, message: str) -> None:
        print(json.dumps({"status": "unusable", "valid": False, "check": "usage", "message": message}, indent=2))


def run_audit(args: argparse.Namespace) -> int:
    """`audit verify`: one JSON object or one summary; never a traceback."""
    from . import audit  # only this subcommand needs it

    try:
        report = audit.verify(args.file)
        result, code = report.as_dict(), (EXIT_OK if report.valid else EXIT_REJECTED)
    except audit.AuditError as exc:
        result, code = {"status": "unusable", "valid": False, "check": "input", "message": str(exc)}, EXIT_UNUSABLE
    except Exception as exc:  # the contract: "could not judge" is not "tampered"
        result = {"status": "unusable", "valid": False, "check": "internal", "message": f"{type(exc).__name__}: {exc}"}
        code = EXIT_UNUSABLE
    if args.json:
        print(json.dumps({"file": str(args.file), **result}, indent=2))
        return code
    status = result["status"]
    if status == "unusable":
        print(f"{args.file}: UNUSABLE ({result['check']}): {result['message']}")
    elif status == "tampered":
        print(f"{args.file}: TAMPERED at line {result['line']} ({result['check']}): {result['message']}")
    else:
        print(f"{args.file}: {result['entries']} entries verify, head {result['head']}")
        if status == "truncated":
            print(f"  warning: {result['message']}")
        print(f"  key {result['keyDigest']}, evidence {result['evidenceKind']}: not checked against a TEE here "
              "(enclave_runtime.audit.verify(check_evidence=...) binds the key to the attestation)")
    return code


def _emit_json(kind: str | None, error: dict[str, str] | None, claims: Claims | None, decision: Decision | None) -> None:
    print(
        json.dumps(
            {
                "kind": kind,
                "verified": claims is not None,
                "error": error,
                "claims": claims.as_dict() if claims is not None else {},
                "validation": decision.as_dict() if decision is not None else None,
            },
            indent=2,
            sort_keys=False,
        )
    )


def _emit_text(kind: str, error: dict[str, str] | None, claims: Claims | None, decision: Decision | None) -> None:
    if claims is None:
        print(f"{kind}: NOT VERIFIED ({error['check'] if error else '?'}): {error['message'] if error else ''}")
        return
    print(f"{kind}: verified, chains to {claims.anchor}{' (debug TEE)' if claims.debug else ''}")
    for name, value in claims.as_dict().items():
        if value not in (None, "", {}, []):
            print(f"  {name}: {value}")
    if decision is not None:
        print("policy: ALLOWED" if decision.allowed else "policy: REJECTED")
        for failure in decision.failed:
            print(f"  - {failure.check}: {failure.message}")


def trust_store(args: argparse.Namespace) -> TrustStore:
    """The roots evidence must chain to: the pinned vendor roots, plus `--trust-simulation-root` (dev) and
    `--trust-dir` (certificates that complete chains). Shared by every subcommand that verifies evidence."""
    sim_roots = Collateral.from_files(args.trust_simulation_root).certificates if args.trust_simulation_root else []
    if args.trust_dir is not None:
        if not args.trust_dir.is_dir():
            raise VerificationError("input", f"--trust-dir {args.trust_dir} is not a directory")
        return TrustStore.from_directory(args.trust_dir, sim_roots)
    return TrustStore(simulation_roots=sim_roots)


def run_verify(args: argparse.Namespace) -> tuple[int, dict[str, str] | None, Claims | None, Decision | None]:
    try:
        policy = _load_policy(args)
    except PolicyError as exc:
        return EXIT_UNUSABLE, {"check": "policy", "message": str(exc)}, None, None
    try:
        try:
            evidence = args.evidence.read_bytes()
        except OSError as exc:
            raise VerificationError("input", f"cannot read --evidence {args.evidence}: {exc.strerror}") from None
        collateral = Collateral.from_files(args.with_files)
        claims = verify(args.kind, evidence, collateral=collateral, store=trust_store(args), at=args.at)
    except VerificationError as exc:
        code = EXIT_UNUSABLE if exc.check == "input" else EXIT_REJECTED
        return code, {"check": exc.check, "message": exc.message}, None, None
    if policy is None:
        return EXIT_OK, None, claims, None
    decision = validate(args.kind, claims, policy)
    return (EXIT_OK if decision.allowed else EXIT_REJECTED), None, claims, decision


def _load_policy(args: argparse.Namespace) -> Policy | None:
    """The `--policy` file, with `--report-data`/`--nonce` replacing its binding values of those names."""
    overrides = {k: v for k, v in (("reportData", args.report_data), ("nonce", args.nonce)) if v is not None}
    if args.policy is None:
        if overrides:
            raise PolicyError("--report-data and --nonce are checked by validation: give --policy too")
        return None
    policy = Policy.from_file(args.policy)
    if not overrides:
        return policy
    try:
        binding = Binding.model_validate({**policy.binding.model_dump(by_alias=True), **overrides})
    except ValidationError as exc:
        raise PolicyError(f"--report-data/--nonce: {exc.errors()[0]['msg']}") from None
    return policy.model_copy(update={"binding": binding})


# --- seal: the party side ------------------------------------------------------------------------------

SEAL_HELP = "seal a dataset file for the collaboration under the party's key (party side)"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SealInputError(Exception):
    """Input `seal` cannot use: `check` classifies it, `field` is the option or stack setting to fix."""

    def __init__(self, check: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.check, self.field, self.message = check, field, message


@dataclass(frozen=True)
class SealTarget:
    """What the stack file says about the dataset being sealed: all a party needs from it."""

    stack_file: Path
    collaboration: str
    party: str
    cloud: str
    dataset: str


def _seal_failure(check: str, field: str | None, message: str) -> dict[str, Any]:
    return {"sealed": None, "error": {"check": check, "field": field, "message": message}}


class _SealParser(UsageParser):
    """Usage errors under `seal` in the seal output's shape."""

    def usage_json(self, message: str) -> None:
        print(json.dumps(_seal_failure("usage", None, message), indent=2))


def _add_seal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (reads ./Pulumi.STACK.yaml) or a stack file's path")
    parser.add_argument("--party", required=True, help="the sealing party (ccp:collaboration.parties[].name)")
    parser.add_argument("--dataset", required=True, help="a dataset declared for the party (parties[].datasets[].name)")
    parser.add_argument("--input", required=True, type=Path, help="the plaintext file")
    parser.add_argument("--output", required=True, type=Path, help="the sealed file to create (never overwritten)")
    # Not `required=True`: once the stack names the party's cloud, the error can say which id shape is expected.
    parser.add_argument(
        "--key-id", help="the party key: AWS key or alias ARN, Azure key URL, or GCP crypto key name (required)"
    )
    parser.add_argument("--endpoint", help="the key service URL to use instead of the cloud's (a stand-in, a private endpoint)")
    parser.add_argument(
        "--access-token-env", metavar="VAR",
        help="name of the environment variable holding a bearer token (Azure: required; GCP: optional; AWS: not used)",
    )
    parser.add_argument("--ca-file", type=Path, metavar="PEM", help="CA bundle to trust for --endpoint")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _stack_file(stack: str) -> Path:
    """`dev` means ./Pulumi.dev.yaml (where `pulumi` itself looks); anything path-like is a path."""
    if stack.endswith((".yaml", ".yml")) or "/" in stack or os.sep in stack:
        path = Path(stack)
        if not path.is_file():
            raise SealInputError("stack", "--stack", f"--stack {stack!r}: no such file; give a Pulumi stack file's path")
        return path
    path = Path.cwd() / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise SealInputError(
            "stack", "--stack",
            f"--stack {stack!r}: there is no {path.name} in {Path.cwd()}; run from the Pulumi project directory "
            "or give the stack file's path (e.g. --stack path/to/Pulumi.dev.yaml)",
        )
    return path


def read_seal_target(stack: str, party: str, dataset: str) -> SealTarget:
    """The collaboration, the party's cloud and the dataset, from a Pulumi stack file read as plain YAML.

    Only `ccp:collaboration.name`, `.parties[].name`, `.parties[].cloud` and `.parties[].datasets[].name`
    are read; full validation is the stack program's job (`stacks.config`), which the runtime does not ship.
    """
    import yaml  # only this subcommand (and policy files) need it

    from .keyrelease.base import CLOUDS

    path = _stack_file(stack)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SealInputError("stack", "--stack", f"--stack {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SealInputError("stack", "--stack", f"--stack {path}: not valid YAML: {exc}") from None
    config = data.get("config") if isinstance(data, dict) else None
    if not isinstance(config, dict):
        raise SealInputError(
            "stack", "config",
            f"{path} has no `config:` mapping: --stack must be a stack file (Pulumi.<stack>.yaml), not the project file",
        )
    collaboration = config.get("ccp:collaboration")
    if not isinstance(collaboration, dict):
        raise SealInputError(
            "stack", "ccp:collaboration",
            f"{path} has no ccp:collaboration mapping under config: (is it the stack file, Pulumi.<stack>.yaml?)",
        )
    name = collaboration.get("name")
    if not isinstance(name, str) or not name:
        raise SealInputError(
            "stack", "ccp:collaboration.name", f"{path}: ccp:collaboration.name is {name!r}; it must be the collaboration's name"
        )
    parties = collaboration.get("parties")
    if not isinstance(parties, list):
        raise SealInputError("stack", "ccp:collaboration.parties", f"{path}: ccp:collaboration.parties is not a list of parties")
    names = [p.get("name") for p in parties if isinstance(p, dict)]
    if party not in names:
        raise SealInputError(
            "party", "--party",
            f"--party {party!r} is not a party of collaboration {name!r} in {path} (ccp:collaboration.parties[].name: "
            f"{', '.join(map(str, names)) or 'none'}); use one of those, or add the party to the stack and deploy it",
        )
    index, entry = next((i, p) for i, p in enumerate(parties) if isinstance(p, dict) and p.get("name") == party)
    where = f"ccp:collaboration.parties[{index}]"
    cloud = entry.get("cloud")
    if cloud not in CLOUDS:
        raise SealInputError("stack", f"{where}.cloud", f"{path}: {where}.cloud is {cloud!r}, expected one of {list(CLOUDS)}")
    datasets = entry.get("datasets") or []
    declared = [d.get("name") for d in datasets if isinstance(d, dict)] if isinstance(datasets, list) else []
    if dataset not in declared:
        raise SealInputError(
            "dataset", "--dataset",
            f"--dataset {dataset!r} is not declared for party {party!r} ({where}.datasets[].name: "
            f"{', '.join(map(str, declared)) or 'none'}); use one of those, or declare it under {where}.datasets "
            f"in {path} and deploy",
        )
    return SealTarget(path, name, party, str(cloud), dataset)


def _check_paths(source: Path, output: Path) -> int:
    """Refuse unusable paths before the key service is asked anything; the input's size in bytes."""
    if not source.exists():
        raise SealInputError("input", "--input", f"--input {source}: no such file")
    if not source.is_file():
        raise SealInputError("input", "--input", f"--input {source} is not a regular file: seal one file at a time")
    if not os.access(source, os.R_OK):
        raise SealInputError("input", "--input", f"--input {source} is not readable by this user")
    if os.path.lexists(output):
        if output.is_dir():
            raise SealInputError(
                "output", "--output",
                f"--output {output} is a directory: give a file name in it, e.g. {output / (source.name + '.sealed')}",
            )
        raise SealInputError(
            "output", "--output", f"--output {output} already exists: remove it or choose another name (seal never overwrites)"
        )
    parent = output.parent
    if not parent.is_dir():
        raise SealInputError("output", "--output", f"--output {output}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SealInputError("output", "--output", f"--output {output}: directory {parent} is not writable by this user")
    return source.stat().st_size


def _access_token(variable: str | None) -> str | None:
    """The token from the environment variable named; tokens never go on a command line (`ps` shows it)."""
    if variable is None:
        return None
    if not _ENV_NAME.match(variable):  # likely the token itself: do not echo it
        raise SealInputError(
            "credentials", "--access-token-env",
            "--access-token-env takes the NAME of an environment variable holding the token (e.g. AZURE_KV_TOKEN), "
            "not the token: a command line is visible to other users in `ps`. Export the token into a variable first",
        )
    token = os.environ.get(variable, "").strip()
    if not token:
        raise SealInputError(
            "credentials", "--access-token-env",
            f"--access-token-env {variable}: the environment variable {variable} is not set or is empty; "
            f"export the token into it first (e.g. `export {variable}=$(...)`)",
        )
    return token


def _seal(args: argparse.Namespace) -> tuple[int, dict[str, Any]]:
    from .keyrelease.base import KeyReleaseError
    from .keyrelease.factory import KEY_ID_SHAPES, WrapperConfigError, check_key_id, wrapper_for
    from .seal import SealError, seal_file

    try:
        target = read_seal_target(args.stack, args.party, args.dataset)
        if not args.key_id:
            raise SealInputError(
                "key-id", "--key-id",
                f"--key-id is required: the key of party {target.party!r} on {target.cloud}, {KEY_ID_SHAPES[target.cloud]}",
            )
        check_key_id(target.cloud, args.key_id)
        size = _check_paths(args.input, args.output)
        token = _access_token(args.access_token_env)
        wrapper = wrapper_for(
            target.cloud, args.key_id, endpoint=args.endpoint, access_token=token, ca_file=args.ca_file
        )
    except SealInputError as exc:
        return EXIT_UNUSABLE, _seal_failure(exc.check, exc.field, exc.message)
    except WrapperConfigError as exc:
        check = {"--access-token-env": "credentials", "cloud": "sdk"}.get(exc.field, exc.field.lstrip("-"))
        return EXIT_UNUSABLE, _seal_failure(check, exc.field, exc.message)
    try:
        header = seal_file(
            args.input, args.output,
            collaboration=target.collaboration, party=target.party, dataset=target.dataset, wrapper=wrapper,
        )
    except SealError as exc:
        refusal = exc.__cause__
        if isinstance(refusal, KeyReleaseError):
            hint = ""
            if "AccessDenied" in refusal.reason or refusal.status in (401, 403):
                hint = (
                    f" (only party {target.party!r}'s data owner may wrap under its key: "
                    "run this with the owner's credentials)"
                )
            message = f"{refusal.service} refused to wrap the data key under {args.key_id}: {refusal.reason}{hint}"
            return EXIT_REJECTED, _seal_failure("key-release", "--key-id", message)
        return EXIT_UNUSABLE, _seal_failure(exc.check, None, exc.message)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return EXIT_UNUSABLE, _seal_failure("io", None, f"sealing failed and left no output:{where}: {exc.strerror or exc}")
    return EXIT_OK, {
        "sealed": str(args.output),
        "collaboration": header.collaboration,
        "party": header.party,
        "dataset": header.dataset,
        "keyId": header.wrapped_key.key_id,
        "bytes": size,
    }


def run_seal(argv: Sequence[str]) -> int:
    """`seal`: one JSON object or one summary; never a traceback."""
    argv = list(argv)
    parser = _SealParser(prog="python -m enclave_runtime seal", description=SEAL_HELP, json_output="--json" in argv)
    _add_seal_arguments(parser)
    args = parser.parse_args(argv)
    try:
        code, result = _seal(args)
    except Exception as exc:  # the contract: "could not seal" is exit 2, never a traceback
        code, result = EXIT_UNUSABLE, _seal_failure("internal", None, f"{type(exc).__name__}: {exc}")
    if args.json:
        print(json.dumps(result, indent=2))
    elif code == EXIT_OK:
        print(
            f"sealed {args.input} -> {result['sealed']}: {result['bytes']} bytes, dataset {result['dataset']!r} "
            f"of party {result['party']!r} in collaboration {result['collaboration']!r}"
        )
        print(f"  data key wrapped under {result['keyId']}")
    else:
        error = result["error"]
        status = "REFUSED" if code == EXIT_REJECTED else "UNUSABLE"
        print(f"seal: {status} ({error['check']}): {error['message']}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["seal"]:  # its own parser, so usage errors come in the seal output's shape
        return run_seal(argv[1:])
    if argv[:1] == ["serve"]:
        from .serve.commands import run_serve

        return run_serve(argv[1:])
    if argv[:1] == ["query"]:
        from .serve.commands import run_query

        return run_query(argv[1:])
    if argv[:1] == ["flower"]:
        from .ml.launcher import run_flower

        return run_flower(argv[1:])
    args = build_parser(json_output="--json" in argv).parse_args(argv)
    if args.command == "audit":
        return run_audit(args)
    try:
        code, error, claims, decision = run_verify(args)
    except Exception as exc:  # the contract: never a traceback, and "could not judge" is not "rejected"
        code, error, claims, decision = EXIT_UNUSABLE, {"check": "internal", "message": f"{type(exc).__name__}: {exc}"}, None, None
    (_emit_json if args.json else _emit_text)(args.kind, error, claims, decision)
    return code
