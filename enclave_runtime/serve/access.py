"""Who may read which declared output: the collaboration's recipients, each bound to a declared key.

`ccp:collaboration.outputs[].recipients` (the stack file, `serve --collaboration`) says which parties
receive which output; `serve --recipient PARTY=CERT.pem` declares each party's client certificate. An
output is served only over a TLS connection whose client certificate carries the key (SubjectPublicKeyInfo,
compared by SHA-256) of one of that output's declared recipients: the binding is the declared key, not a CA,
so self-signed certificates are the norm, and TLS 1.3's CertificateVerify proves the client holds the key.

The declared certificates are also the server's only client trust anchors: Python's `ssl` cannot request a
client certificate without verifying it, so a client presenting any other certificate fails the handshake (and,
since OpenSSL finds a trusted certificate by its subject, the declared certificates' subjects must differ).
A client presenting none (inference) is served as before (`ssl.CERT_OPTIONAL`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")  # the collaboration's names (parties, outputs)


class AccessError(ValueError):
    """A recipient declaration the service refuses to start with; `field` is the flag or key to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def spki_sha256(certificate: x509.Certificate) -> str:
    spki = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class Recipient:
    """A party's declared client key (and the certificate carrying it, the TLS layer's trust anchor)."""

    party: str
    certificate: x509.Certificate = field(repr=False)
    spki_sha256: str


@dataclass(frozen=True)
class Access:
    """`outputs`: output name -> its declared recipient parties; `keys`: party -> its declared key.
    Empty (the default) releases no output to anyone. Build it with `declare` (validated)."""

    outputs: Mapping[str, frozenset[str]] = field(default_factory=dict)
    keys: Mapping[str, Recipient] = field(default_factory=dict)

    @classmethod
    def declare(cls, outputs: Mapping[str, Iterable[str]], certificates: Mapping[str, x509.Certificate],
                *, now: dt.datetime | None = None) -> "Access":
        now = now or dt.datetime.now(dt.timezone.utc)
        declared: dict[str, frozenset[str]] = {}
        for name, parties in outputs.items():
            parties = frozenset(parties)
            for value, what in [(name, "output")] + [(p, f"recipient of {name!r}") for p in sorted(parties)]:
                if not isinstance(value, str) or not _NAME.match(value):
                    raise AccessError("--collaboration", f"{what} {value!r} is not a collaboration name "
                                      "(lowercase letters, digits, '-')")
            if not parties:
                raise AccessError("--collaboration", f"output {name!r} declares no recipients")
            declared[name] = parties
        everyone = frozenset().union(*declared.values()) if declared else frozenset()
        keys: dict[str, Recipient] = {}
        owners: dict[str, str] = {}
        for party, certificate in certificates.items():
            if party not in everyone:
                raise AccessError("--recipient", f"--recipient {party!r} is not a declared recipient of any output "
                                  f"(ccp:collaboration.outputs[].recipients: {sorted(everyone)})")
            if certificate.not_valid_after_utc <= now:
                raise AccessError("--recipient", f"--recipient {party!r}: the certificate expired "
                                  f"{certificate.not_valid_after_utc.isoformat()}: declare the party's current one")
            digest = spki_sha256(certificate)
            if digest in owners:
                raise AccessError("--recipient", f"--recipient {party!r} declares the same key as {owners[digest]!r}: "
                                  "each party needs its own key, or its outputs are not its own")
            same = next((r.party for r in keys.values() if r.certificate.subject == certificate.subject), None)
            if same is not None:
                raise AccessError("--recipient", f"--recipient {party!r} and {same!r}: both certificates have the "
                                  f"subject {certificate.subject.rfc4514_string()!r}; TLS finds a trusted certificate by "
                                  "its subject, so give each party's its own (e.g. CN=<party>)")
            owners[digest] = party
            keys[party] = Recipient(party, certificate, digest)
        return cls(declared, keys)

    @classmethod
    def from_files(cls, collaboration: Path, recipients: Sequence[str]) -> "Access":
        """`--collaboration STACK.yaml` (its `ccp:collaboration.outputs`) and `--recipient PARTY=CERT.pem`s."""
        certificates: dict[str, x509.Certificate] = {}
        for spec in recipients:
            party, sep, file = spec.partition("=")
            if not sep or not party or not file:
                raise AccessError("--recipient", f"--recipient {spec!r}: expected PARTY=CERT.pem "
                                  "(e.g. clinic-aws=clinic-aws.pem, the party's client certificate)")
            if party in certificates:
                raise AccessError("--recipient", f"--recipient {party!r} is declared twice")
            try:
                certificates[party] = x509.load_pem_x509_certificate(Path(file).read_bytes())
            except OSError as exc:
                raise AccessError("--recipient", f"--recipient {spec!r}: cannot read {file}: {exc.strerror}") from None
            except ValueError as exc:
                raise AccessError("--recipient", f"--recipient {spec!r}: {file} is not a PEM certificate: {exc}") from None
        return cls.declare(_declared_outputs(collaboration), certificates)

    def party(self, spki: str | None) -> str | None:
        """The declared party holding the key with this SPKI SHA-256, if any."""
        if spki is None:
            return None
        return next((r.party for r in self.keys.values() if r.spki_sha256 == spki), None)

    def may_read(self, output: str, party: str | None) -> bool:
        return party is not None and party in self.outputs.get(output, frozenset())

    def trust_pem(self) -> str:
        """The declared certificates, for the server's TLS context ("" when none: no client certificate asked)."""
        return "".join(r.certificate.public_bytes(serialization.Encoding.PEM).decode() for r in self.keys.values())


def _declared_outputs(path: Path) -> dict[str, list[str]]:
    import yaml

    try:
        data: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise AccessError("--collaboration", f"--collaboration {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise AccessError("--collaboration", f"--collaboration {path}: not valid YAML: {exc}") from None
    config = data.get("config") if isinstance(data, dict) else None
    collaboration = config.get("ccp:collaboration") if isinstance(config, dict) else None
    outputs = collaboration.get("outputs") if isinstance(collaboration, dict) else None
    if not isinstance(outputs, list):
        raise AccessError("--collaboration", f"--collaboration {path}: no ccp:collaboration.outputs list under "
                          "config: (give the stack file, Pulumi.<stack>.yaml)")
    declared: dict[str, list[str]] = {}
    for i, output in enumerate(outputs):
        name = output.get("name") if isinstance(output, dict) else None
        recipients = output.get("recipients") if isinstance(output, dict) else None
        if (not isinstance(name, str) or name in declared or not isinstance(recipients, list)
                or not all(isinstance(r, str) for r in recipients)):
            raise AccessError("--collaboration", f"--collaboration {path}: ccp:collaboration.outputs[{i}] needs a "
                              "unique name and a list of recipient party names")
        declared[name] = recipients
    return declared
