"""`python -m enclave_runtime serve` and `python -m enclave_runtime query` (dispatched from `enclave_runtime.cli`).

serve: exit 0 after a graceful shutdown (SIGTERM/SIGINT), 2 when it cannot start (no TEE evidence source,
an unreadable model or output file, an output or recipient the collaboration does not declare, a usage
error). It never serves without an evidence source: on hardware the collector `enclave_runtime.evidence.detect`
finds; `--simulate` (dev/CI) uses the simulated Nitro enclave and writes its root to `--simulation-root-out`,
which clients must pass explicitly (`--trust-simulation-root`), and which a prod policy refuses anyway.

query: exit 0 answered, 1 refused (an attestation check failed, named; an output not released to the caller,
401/403; or the service failed), 2 unusable input (usage, an unreadable policy, input the service rejected
as malformed; field and fix named).
With `--json` the output is exactly one object: `{"attested", "result", "error"}` (`attested`: the
verified peer or null; `error`: null or `{"check", "field", "message"}`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..cli import UsageParser, trust_store

EXIT_OK, EXIT_REJECTED, EXIT_UNUSABLE = 0, 1, 2
SERVE_HELP = "serve the collaboration's model and outputs over attested TLS 1.3 (inside the TEE)"
QUERY_HELP = "verify the attested service, then query it (client side)"


class _Parser(UsageParser):
    """Usage errors of `serve`/`query` in the query output's shape."""

    def usage_json(self, message: str) -> None:
        print(json.dumps({"attested": None, "result": None,
                          "error": {"check": "usage", "field": None, "message": message}}, indent=2))


# --- serve ---------------------------------------------------------------------------------------------


def serve_parser() -> _Parser:
    parser = _Parser(prog="python -m enclave_runtime serve", description=SERVE_HELP)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--model", type=Path, help='model file {"kind": "linear", "weights": [...], "bias": n} '
                        "(default: the demo linear model, 4 features)")
    parser.add_argument("--output", action="append", default=[], metavar="NAME=FILE",
                        help="a declared query output served at /v1/outputs/NAME to its declared recipients (repeatable)")
    parser.add_argument("--collaboration", type=Path, metavar="STACK",
                        help="the stack file whose ccp:collaboration.outputs[].recipients say who receives which output")
    parser.add_argument("--recipient", action="append", default=[], metavar="PARTY=CERT.pem",
                        help="a recipient party's client certificate (self-signed is fine: its key is what is "
                        "authorized); only a client holding that key reads the party's outputs (repeatable)")
    parser.add_argument("--name", action="append", default=[], dest="names", metavar="DNS",
                        help="DNS name or IP for the certificate (informative: clients trust the attestation)")
    parser.add_argument("--max-body", type=int, default=64 * 1024, metavar="BYTES", help="request body limit (413 above)")
    add_tee_arguments(parser)
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def run_serve(argv: Sequence[str]) -> int:
    args = serve_parser().parse_args(list(argv))
    try:
        service, settings = _service(args)
    except Unusable as exc:
        print(f"serve: UNUSABLE ({exc.field}): {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    from .server import build_server

    server = build_server(service, settings)
    print(f"serving on https://{settings.host}:{settings.port} (TLS 1.3, key sha256:{service.identity.spki_sha256}"
          f"{', SIMULATED TEE' if args.simulate else ''})", file=sys.stderr, flush=True)
    # uvicorn drains, then re-raises the signal it caught; exiting 0 here (not "killed by SIGTERM") tells an
    # orchestrator the shutdown was the orderly one it asked for. Installed before startup, so a signal
    # during startup also ends the process cleanly.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    server.run()
    if not server.started:
        print(f"serve: could not start on {settings.host}:{settings.port} (see the log above: port in use?)",
              file=sys.stderr)
        return EXIT_UNUSABLE
    return EXIT_OK


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_OK)


class Unusable(Exception):
    """A server-side command cannot start: `field` names the option or setting to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def add_tee_arguments(parser: argparse.ArgumentParser) -> None:
    """Where evidence comes from, for every command that produces it inside the TEE (`serve`, `flower
    superlink`): the TEE this machine offers, or with `--simulate` the simulated Nitro enclave."""
    parser.add_argument("--simulate", action="store_true", help="dev/CI: evidence from a simulated Nitro enclave")
    parser.add_argument("--simulate-debug", action="store_true", help="with --simulate: a debug-mode enclave (PCRs zero)")
    parser.add_argument("--simulate-pcrs-from", type=Path, metavar="POLICY",
                        help="with --simulate: report this policy's (or stack file's) approved Nitro PCRs")
    parser.add_argument("--simulation-root-out", type=Path, metavar="PEM",
                        help="with --simulate (required): write the simulated root here for clients to trust")


def tee_collector(args: argparse.Namespace) -> Any:
    """The evidence collector `add_tee_arguments` selected; Unusable when there is none (never a fallback
    to no evidence)."""
    if args.simulate:
        return _simulated(args)
    if args.simulate_debug or args.simulate_pcrs_from or args.simulation_root_out:
        raise Unusable("--simulate", "--simulate-debug/--simulate-pcrs-from/--simulation-root-out need --simulate")
    from ..evidence.base import EvidenceError
    from ..evidence.detect import detect

    try:
        return detect()
    except EvidenceError as exc:
        raise Unusable("tee", f"{exc} (for dev/CI: --simulate)") from None


def _service(args: argparse.Namespace) -> tuple[Any, Any]:
    from .access import Access, AccessError
    from .app import Limits, Service
    from .model import DEMO_MODEL, ModelError, Outputs, load_model
    from .server import Settings
    from .tls import TlsIdentity

    if not 1 <= args.port <= 65535:
        raise Unusable("--port", f"--port {args.port}: give 1..65535")
    if args.max_body < 1:
        raise Unusable("--max-body", f"--max-body {args.max_body}: give a positive number of bytes")
    try:
        model = load_model(args.model) if args.model else DEMO_MODEL
        outputs = Outputs.from_files(args.output)
    except ModelError as exc:
        raise Unusable("--model" if "--model" in str(exc) else "--output", str(exc)) from None
    if args.collaboration is None:
        if args.output or args.recipient:
            raise Unusable("--collaboration", "--output/--recipient need --collaboration STACK: outputs are "
                           "released only to their declared recipients (ccp:collaboration.outputs[].recipients)")
        access = Access()
    else:
        try:
            access = Access.from_files(args.collaboration, args.recipient)
        except AccessError as exc:
            raise Unusable(exc.field, str(exc)) from None
        undeclared = sorted(set(outputs.values) - set(access.outputs))
        if undeclared:
            raise Unusable("--output", f"--output {undeclared}: not declared in {args.collaboration} "
                           f"(ccp:collaboration.outputs: {sorted(access.outputs)}); only declared outputs are served")
    collector = tee_collector(args)
    names = tuple(args.names) or ("localhost", args.host)
    service = Service(TlsIdentity.generate(names), collector, model, outputs, Limits(max_body=args.max_body),
                      access=access)
    return service, Settings(host=args.host, port=args.port, log_level=args.log_level)


def _simulated(args: argparse.Namespace) -> Any:
    from ..policy import Policy, PolicyError
    from .evidence import SimulatedNitroCollector, pcrs_from_policy

    if args.simulation_root_out is None:
        raise Unusable("--simulation-root-out", "--simulate needs --simulation-root-out PEM: clients must be "
                       "given the simulated root explicitly (--trust-simulation-root)")
    pcrs: dict[int, bytes] = {}
    if args.simulate_pcrs_from is not None:
        try:
            policy = Policy.from_file(args.simulate_pcrs_from)
        except PolicyError as exc:
            raise Unusable("--simulate-pcrs-from", str(exc)) from None
        if policy.measurements.nitro is None:
            raise Unusable("--simulate-pcrs-from", f"{args.simulate_pcrs_from} approves no Nitro measurements "
                           "(measurements.nitro): the simulated enclave is a Nitro one")
        pcrs = pcrs_from_policy(policy.measurements.nitro.model_dump())
    collector = SimulatedNitroCollector(pcrs=pcrs, debug=args.simulate_debug)
    from cryptography.hazmat.primitives import serialization

    try:
        args.simulation_root_out.write_bytes(collector.sim.root.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise Unusable("--simulation-root-out", f"cannot write {args.simulation_root_out}: {exc.strerror}") from None
    return collector


# --- query ---------------------------------------------------------------------------------------------


def query_parser(json_output: bool = False) -> _Parser:
    parser = _Parser(prog="python -m enclave_runtime query", description=QUERY_HELP, json_output=json_output)
    parser.add_argument("url", help="the service, https://HOST:PORT")
    parser.add_argument("--policy", required=True, type=Path,
                        help="policy document or Pulumi stack file with the approved measurements")
    parser.add_argument("--trust-simulation-root", type=Path, action="append", default=[], metavar="PEM",
                        help="accept the simulated TEE with this root (dev; a prod policy still refuses it)")
    parser.add_argument("--trust-dir", type=Path, help="certificates to complete chains (trusts nothing by itself)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--infer", metavar="JSON", help='inference rows, e.g. \'[[1, 2, 3, 4]]\' or \'{"inputs": ...}\'')
    action.add_argument("--infer-file", type=Path, metavar="FILE", help="the same, from a JSON file")
    action.add_argument("--output", metavar="NAME", help="read one declared output")
    action.add_argument("--outputs", action="store_true", help="list the declared outputs")
    action.add_argument("--model", action="store_true", help="describe the served model")
    action.add_argument("--attest-only", action="store_true", help="verify the service and send nothing else")
    parser.add_argument("--client-cert", type=Path, metavar="PEM",
                        help="your party's client certificate (to read the outputs declared for you)")
    parser.add_argument("--client-key", type=Path, metavar="PEM", help="its private key (default: in --client-cert)")
    parser.add_argument("--max-age", type=float, default=300.0, metavar="SECONDS", help="oldest evidence accepted")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def run_query(argv: Sequence[str]) -> int:
    argv = list(argv)
    args = query_parser(json_output="--json" in argv).parse_args(argv)
    try:
        code, attested, result, error = _query(args)
    except Exception as exc:  # the contract: never a traceback; "could not judge" is not "refused"
        code, attested, result = EXIT_UNUSABLE, None, None
        error = {"check": "internal", "field": None, "message": f"{type(exc).__name__}: {exc}"}
    if args.json:
        print(json.dumps({"attested": attested, "result": result, "error": error}, indent=2))
        return code
    if attested is not None:
        print(f"attested: {attested['kind']} chaining to {attested['anchor']}, TLS key sha256:{attested['spkiSha256']}")
    if error is not None:
        status = "REFUSED" if code == EXIT_REJECTED else "UNUSABLE"
        field = f" [{error['field']}]" if error.get("field") else ""
        print(f"query: {status} ({error['check']}){field}: {error['message']}")
    elif result is not None:
        print(json.dumps(result, indent=2))
    return code


def _error(check: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"check": check, "field": field, "message": message}


def _query(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None, Any, dict[str, Any] | None]:
    from ..attest import VerificationError
    from ..client import AttestationRefused, AttestedClient, QueryError, Verifier
    from ..policy import Policy, PolicyError

    try:
        policy = Policy.from_file(args.policy)
        store = trust_store(args)
        body = _input(args)
        if args.max_age <= 0 or args.timeout <= 0:
            raise ValueError("--max-age and --timeout must be positive seconds")
        if args.client_key is not None and args.client_cert is None:
            raise ValueError("--client-key needs --client-cert")
        client = AttestedClient(args.url, Verifier(policy, store, dt.timedelta(seconds=args.max_age)),
                                timeout=args.timeout, client_cert=args.client_cert, client_key=args.client_key)
    except PolicyError as exc:
        return EXIT_UNUSABLE, None, None, _error("policy", str(exc), "--policy")
    except VerificationError as exc:
        return EXIT_UNUSABLE, None, None, _error("input", exc.message)
    except ValueError as exc:
        return EXIT_UNUSABLE, None, None, _error("input", str(exc))
    attested = None
    try:
        with client:
            attested = client.connect().summary()
            if args.attest_only:
                result: Any = None
            elif body is not None:
                result = client.infer(body)
            elif args.output is not None:
                result = {"name": args.output, "value": client.output(args.output)}
            elif args.outputs:
                result = {"outputs": client.outputs()}
            else:
                result = client.model()
    except AttestationRefused as exc:
        return EXIT_REJECTED, None, None, _error(exc.check, exc.message)
    except QueryError as exc:
        # 401/403: not released to this caller (no or another party's client certificate) is a refusal.
        code = EXIT_UNUSABLE if 400 <= exc.status < 500 and exc.status not in (401, 403, 408, 429) else EXIT_REJECTED
        return code, attested, None, _error(exc.check, f"HTTP {exc.status}: {exc.message}", exc.field)
    except OSError as exc:
        return EXIT_REJECTED, attested, None, _error("connect", f"cannot reach {args.url}: {exc}")
    return EXIT_OK, attested, result, None


def _input(args: argparse.Namespace) -> list[Any] | None:
    if args.infer is None and args.infer_file is None:
        return None
    where = "--infer" if args.infer is not None else f"--infer-file {args.infer_file}"
    try:
        text = args.infer if args.infer is not None else args.infer_file.read_text()
    except OSError as exc:
        raise ValueError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{where}: not JSON ({exc}): give rows, e.g. [[1, 2, 3, 4]]") from None
    rows = data.get("inputs") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError(f'{where}: expected a list of rows or {{"inputs": [...]}}, got {type(data).__name__}')
    return rows
