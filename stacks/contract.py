"""`python -m stacks.contract sign|verify|keygen`: the measurement contract of a stack.

    python -m stacks.contract keygen --out my-party.pem        # prints the PEM to declare
    python -m stacks.contract sign --stack prod --party clinic-aws --key my-party.pem
    python -m stacks.contract verify --stack prod

`sign` writes (or updates) `stacks/contracts/<stack>.json` with the party's signature over the stack's
current `ccp:collaboration.measurements`. When the measurements changed since the file was written, the
file is restarted for the new set and the earlier signatures are dropped (listed): every party signs
again. The private key must be the party's declared `measurementSigningKey`; it never enters the repo.

`verify` prints who has and has not validly signed exactly the stack's measurements. Exit codes: 0 every
party's signature covers them, 1 some do not (or the file is tampered), 2 the stack or a key cannot be used.
The format and the signed statement are described in `components/attestation/contract.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from components.attestation import contract
from stacks import config

ROOT = Path(__file__).resolve().parents[1]
EXIT_OK, EXIT_UNSIGNED, EXIT_INVALID = 0, 1, 2


def status(settings: config.StackConfig, root: Path, stack: str) -> contract.ContractStatus:
    """The contract status of a validated stack config (what the review reports)."""
    collaboration = settings.collaboration
    return contract.check(
        collaboration.name,
        collaboration.measurements,
        [(party.name, party.measurement_signing_key) for party in collaboration.parties],
        root,
        stack,
    )


def _settings(root: Path, stack: str) -> config.StackConfig:
    path = root / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise contract.ContractError(f"{path}: no such stack file")
    raw = config.read_stack_file(path)
    if "collaboration" not in raw:
        raise contract.ContractError(f"{path}: has no ccp:collaboration (not a ccp stack)")
    return config.validate(raw)


def sign(root: Path, stack: str, party: str, key_file: Path) -> list[str]:
    """Add `party`'s signature; returns what was done, one line each."""
    settings = _settings(root, stack)
    collaboration = settings.collaboration
    declared = {p.name: p.measurement_signing_key for p in collaboration.parties}
    if party not in declared:
        raise contract.ContractError(
            f"{party!r} is not a party of {collaboration.name} ({', '.join(sorted(declared))})"
        )
    reference = declared[party]
    if reference is None:
        raise contract.ContractError(
            f"party {party} declares no measurementSigningKey in Pulumi.{stack}.yaml: add its public key "
            "(`python -m stacks.contract keygen` prints one) before signing"
        )
    public = contract.declared_key(reference, root)
    try:
        private = contract.load_private_key(key_file.read_bytes())
    except OSError as error:
        raise contract.ContractError(f"{key_file}: cannot be read ({error.strerror or error})") from None
    measurements = collaboration.measurements
    path = contract.contract_path(root, stack)
    notes: list[str] = []
    document = contract.new_document(collaboration.name, measurements)
    if path.exists():
        try:
            existing = contract.read(path)
        except contract.ContractError as error:
            existing = None
            notes.append(f"replaced an unusable contract file ({error})")
        if existing is not None:
            if existing["digest"] == document["digest"] and existing["collaboration"] == collaboration.name:
                document["signatures"] = existing["signatures"]
            elif existing["signatures"]:
                dropped = ", ".join(s["party"] for s in existing["signatures"])
                notes.append(
                    f"the measurements changed (was {existing['version']} {existing['digest'][:23]}…): "
                    f"dropped the signatures of {dropped}; every party signs again"
                )
    document = contract.add_signature(document, party, private, public)
    contract.write(path, document)
    notes.append(f"{party} signed {collaboration.name} measurements {measurements.version} ({document['digest']}) in {path}")
    return notes


def verify_lines(result: contract.ContractStatus) -> list[str]:
    lines = [f"{result.path}: measurements {result.version} {result.digest}"]
    for p in result.parties:
        state = "valid" if p.valid else ("INVALID" if p.signed else "NOT SIGNED")
        lines.append(f"  {p.party}: {state}" + (f" ({p.reason})" if p.reason else ""))
    lines += [f"  problem: {problem}" for problem in result.problems]
    lines.append("complete: every party signed exactly these measurements" if result.complete else "INCOMPLETE")
    return lines


def keygen(out: Path) -> str:
    """A new Ed25519 private key in `out` (refusing to overwrite); returns the public PEM to declare."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with open(out, "xb") as handle:  # never over an existing key
        handle.write(pem)
    out.chmod(0o600)
    return contract.public_key_pem(key)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.contract", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("sign", "verify"):
        sub = commands.add_parser(name)
        sub.add_argument("--stack", required=True, help="reads Pulumi.<stack>.yaml")
        sub.add_argument("--program", type=Path, default=ROOT, help="the repository (default: this one)")
        if name == "sign":
            sub.add_argument("--party", required=True, help="the signing party's name")
            sub.add_argument("--key", type=Path, required=True, help="the party's private key (PEM)")
    gen = commands.add_parser("keygen")
    gen.add_argument("--out", type=Path, required=True, help="where the new private key goes (not in the repo)")
    args = parser.parse_args(argv)
    try:
        if args.command == "keygen":
            print(keygen(args.out), end="")
            return EXIT_OK
        root = args.program.resolve()
        if args.command == "sign":
            print("\n".join(sign(root, args.stack, args.party, args.key)))
            return EXIT_OK
        result = status(_settings(root, args.stack), root, args.stack)
        print("\n".join(verify_lines(result)))
        return EXIT_OK if result.complete else EXIT_UNSIGNED
    except (contract.ContractError, config.ConfigError, FileExistsError) as error:
        print(f"python -m stacks.contract {args.command}: {error}", file=sys.stderr)
        return EXIT_INVALID


if __name__ == "__main__":
    sys.exit(main())
