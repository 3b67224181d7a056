"""`python -m enclave_runtime verify`: the contract reviewers and CI use.

Exit codes: 0 verified (and allowed, when a policy is given), 1 rejected (verification or validation
failed), 2 unusable input or usage. With `--json` the output is exactly one JSON object, whatever
happens; without it, one human-readable summary. Never a traceback: an unexpected exception is
reported as check `internal` with exit 2, so a caller can tell "rejected" from "could not judge".

`python -m enclave_runtime audit verify FILE [--json]` follows the same contract for an audit log
(`enclave_runtime.audit`): 0 the chain verifies (also when only its last line was cut short by a crash,
reported as `truncated`), 1 tampered (the line and the check named), 2 unusable input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from functools import partial
from typing import Any, NoReturn

from .attest import KINDS, Collateral, TrustStore, VerificationError, verify
from .attest.collateral import AMD_SERIAL_ZERO_WARNING
from .attest.claims import Claims
from pydantic import ValidationError

from .policy import Binding, Decision, Policy, PolicyError, validate

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as exit 2 in the CLI's own output format."""

    def __init__(self, *args: Any, json_output: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_output = json_output

    def error(self, message: str) -> NoReturn:
        if self.json_output:
            _emit_json(None, {"check": "usage", "message": message}, None, None)
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


def build_parser(json_output: bool = False) -> _Parser:
    parser = _Parser(prog="python -m enclave_runtime", description=__doc__.splitlines()[0], json_output=json_output)
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=partial(_Parser, json_output=json_output)
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
    return parser


class _AuditParser(_Parser):
    """Usage errors under `audit` in the audit output's shape."""

    def error(self, message: str) -> NoReturn:
        if self.json_output:
            print(json.dumps({"status": "unusable", "valid": False, "check": "usage", "message": message}, indent=2))
        else:
            self.print_usage(sys.stderr)
            print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNUSABLE)


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


def _store(args: argparse.Namespace, collateral: Collateral) -> TrustStore:
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
        claims = verify(args.kind, evidence, collateral=collateral, store=_store(args, collateral), at=args.at)
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


def main(argv: Sequence[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=AMD_SERIAL_ZERO_WARNING)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(json_output="--json" in argv).parse_args(argv)
    if args.command == "audit":
        return run_audit(args)
    try:
        code, error, claims, decision = run_verify(args)
    except Exception as exc:  # the contract: never a traceback, and "could not judge" is not "rejected"
        code, error, claims, decision = EXIT_UNUSABLE, {"check": "internal", "message": f"{type(exc).__name__}: {exc}"}, None, None
    (_emit_json if args.json else _emit_text)(args.kind, error, claims, decision)
    return code
