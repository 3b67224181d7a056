"""Trust anchors and certificate chains.

Vendor roots are pinned by the SHA-256 of their DER encoding. The certificate bytes themselves come
from wherever the evidence brings them (Nitro's cabundle, a DCAP quote's PCK chain, the files given with
`--with`, a trust directory): the pin, not the source, is what makes a root trusted. A self-signed
certificate that is not pinned ends no chain, except a simulation root passed explicitly.

Chains are checked link by link with `verify_directly_issued_by` rather than `x509.verification`:
the AWS Nitro leaf has no AuthorityKeyIdentifier and AMD's chain is RSA-PSS with vendor extensions,
both of which the WebPKI-profile verifier refuses. Verified links are cached by fingerprint pair, so a
warm verification pays only for the leaf's own signature; validity at the verification time is checked
on every call.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .collateral import MALFORMED_CERTIFICATE, Collateral
from .errors import VerificationError


@dataclass(frozen=True)
class PinnedRoot:
    name: str
    vendor: str  # "aws-nitro" | "amd" | "intel"


# SHA-256 of each root's DER. Public facts: AWS publishes the Nitro Enclaves Root-G1 fingerprint
# (https://docs.aws.amazon.com/enclaves/latest/user/verify-root.html); the AMD ARKs are served by the AMD
# KDS (https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/cert_chain); the Intel SGX Root CA is
# published at https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem.
PINNED_ROOTS: dict[str, PinnedRoot] = {
    "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b": PinnedRoot("aws-nitro-root-g1", "aws-nitro"),
    "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd": PinnedRoot("amd-ark-milan", "amd"),
    "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1": PinnedRoot("amd-ark-genoa", "amd"),
    "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a": PinnedRoot("amd-ark-turin", "amd"),
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3": PinnedRoot("intel-sgx-root-ca", "intel"),
}

SIMULATION = "simulation"


@functools.lru_cache(maxsize=4096)
def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER encoding, lowercase hex (cached: evidence repeats the same intermediates)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _load_der(der: bytes) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(der)
    except MALFORMED_CERTIFICATE as exc:
        raise VerificationError("chain", f"certificate is not valid DER X.509: {exc}") from None
    if not readable(cert):
        raise VerificationError("chain", f"certificate sha256 {fingerprint(cert)[:16]}… has fields that cannot be decoded")
    return cert


_CERT_CACHE: dict[bytes, x509.Certificate] = {}


def load_der_cached(der: bytes) -> x509.Certificate:
    """Parse a DER certificate once per process: evidence repeats the same intermediates every time."""
    cert = _CERT_CACHE.get(der)
    if cert is None:
        if len(_CERT_CACHE) > 4096:
            _CERT_CACHE.clear()
        cert = _CERT_CACHE[der] = _load_der(der)
    return cert


@functools.lru_cache(maxsize=4096)
def readable(cert: x509.Certificate) -> bool:
    """`cryptography` decodes names, dates, extensions and keys lazily: a damaged certificate parses,
    then raises on first use. Checking once (per certificate, cached) keeps every later use plain."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        cert.extensions  # noqa: B018 - decoding is the check
        cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        cert.signature_hash_algorithm  # noqa: B018
        cert.public_key()
    except MALFORMED_CERTIFICATE:
        return False
    # The signature BIT STRING ends the DER: its unused-bits octet comes right before the signature
    # bytes and is 0 in every CA's output. cryptography ignores it, so a flipped one would otherwise be
    # an unsigned byte that changes nothing.
    der = cert.public_bytes(serialization.Encoding.DER)
    return der[-len(cert.signature) - 1] == 0


def describe(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} (sha256 {fingerprint(cert)[:16]}…)"


@dataclass(frozen=True)
class Anchor:
    """The root a verified chain ended at: a pinned vendor root, or the explicit simulation root."""

    name: str
    certificate: x509.Certificate

    @property
    def simulated(self) -> bool:
        return self.name == SIMULATION


class TrustStore:
    """Where chains may end and where missing certificates may be found.

    `certificates` is a pool (a trust directory, `--with` files) used to complete chains; it trusts
    nothing by itself. `simulation_roots` are trusted as the `simulation` anchor, and only because the
    caller passed them; a production policy refuses evidence that chains to them.
    """

    def __init__(
        self,
        certificates: Iterable[x509.Certificate] = (),
        simulation_roots: Iterable[x509.Certificate] = (),
    ) -> None:
        self.pool: list[x509.Certificate] = list(certificates)
        self.simulation = {fingerprint(c): c for c in simulation_roots}
        self.pool.extend(self.simulation.values())

    @classmethod
    def from_directory(cls, path: Path, simulation_roots: Iterable[x509.Certificate] = ()) -> "TrustStore":
        files = sorted(p for p in Path(path).iterdir() if p.is_file())
        return cls(Collateral.from_files(files).certificates, simulation_roots)

    def with_certificates(self, certificates: Iterable[x509.Certificate]) -> "TrustStore":
        """This store plus more pool certificates (those given with one piece of evidence)."""
        store = TrustStore(self.pool + list(certificates))
        store.simulation = self.simulation
        return store

    def anchor(self, root: x509.Certificate, vendor: str) -> Anchor:
        fp = fingerprint(root)
        if fp in self.simulation:
            return Anchor(SIMULATION, root)
        pinned = PINNED_ROOTS.get(fp)
        if pinned is None:
            raise VerificationError(
                "root",
                f"chain ends at {describe(root)}, which is not a pinned {vendor} root; a genuine chain ends "
                f"at one of {sorted(p.name for p in PINNED_ROOTS.values() if p.vendor == vendor)}",
            )
        if pinned.vendor != vendor:
            raise VerificationError(
                "root", f"chain ends at {pinned.name}, a {pinned.vendor} root, but {vendor} evidence was given"
            )
        return Anchor(pinned.name, root)


class ChainVerifier:
    """Builds and verifies leaf → … → root against a `TrustStore`, caching verified links."""

    MAX_DEPTH = 6

    MAX_CHAINS = 1024

    def __init__(self) -> None:
        self._links: set[tuple[str, str]] = set()
        # (leaf, candidates + pool) fingerprints -> the chain built from them: what a long-running
        # verifier sees again and again. Validity and the anchor are still checked on every call.
        self._chains: dict[tuple[str, ...], list[x509.Certificate]] = {}

    def clear(self) -> None:
        """Forget every verified link and chain (a cold start, for benchmarks and tests)."""
        self._links.clear()
        self._chains.clear()

    def verify(
        self,
        leaf: x509.Certificate,
        candidates: Sequence[x509.Certificate],
        store: TrustStore,
        vendor: str,
        at: dt.datetime,
    ) -> tuple[Anchor, list[x509.Certificate]]:
        """Verify the chain from `leaf` to a trusted root; returns the anchor and the chain, leaf first.

        `candidates` (certificates that came with the evidence) are searched before the store's pool.
        """
        if not readable(leaf):
            raise VerificationError("chain", "the leaf certificate's names, dates or extensions cannot be decoded")
        pool = [c for c in list(candidates) + store.pool if readable(c)]
        key = (fingerprint(leaf), *(fingerprint(c) for c in pool))
        known = self._chains.get(key)
        if known is not None:
            for cert in known:
                self._check_time(cert, at)
            return store.anchor(known[-1], vendor), list(known)
        anchor, chain = self._build(leaf, pool, store, vendor, at)
        if len(self._chains) >= self.MAX_CHAINS:
            self._chains.clear()
        self._chains[key] = chain
        return anchor, list(chain)

    def _build(
        self, leaf: x509.Certificate, pool: Sequence[x509.Certificate], store: TrustStore, vendor: str, at: dt.datetime
    ) -> tuple[Anchor, list[x509.Certificate]]:
        chain = [leaf]
        current = leaf
        for _ in range(self.MAX_DEPTH):
            self._check_time(current, at)
            if current.issuer == current.subject and self._verifies(current, current):
                anchor = store.anchor(current, vendor)
                return anchor, chain
            issuer = self._find_issuer(current, pool)
            chain.append(issuer)
            current = issuer
        raise VerificationError("chain", f"no root within {self.MAX_DEPTH} links of {describe(leaf)}")

    def _find_issuer(self, cert: x509.Certificate, pool: Sequence[x509.Certificate]) -> x509.Certificate:
        named = [c for c in pool if c.subject == cert.issuer]
        if not named:
            raise VerificationError(
                "chain",
                f"issuer {cert.issuer.rfc4514_string()} of {describe(cert)} was not supplied: give its "
                "certificate with --with (or in the trust directory)",
            )
        for candidate in named:
            if self._verifies(cert, candidate):
                self._check_ca(candidate)
                return candidate
        raise VerificationError(
            "chain", f"signature of {describe(cert)} does not verify with any certificate named {cert.issuer.rfc4514_string()}"
        )

    def _verifies(self, child: x509.Certificate, parent: x509.Certificate) -> bool:
        key = (fingerprint(child), fingerprint(parent))
        if key in self._links:
            return True
        try:
            child.verify_directly_issued_by(parent)
        except (InvalidSignature, ValueError, TypeError):
            return False
        self._links.add(key)
        return True

    @staticmethod
    def _check_ca(cert: x509.Certificate) -> None:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            return  # AMD's ASK/ARK carry no BasicConstraints; the pin and the signature decide
        if not constraints.ca:
            raise VerificationError("chain", f"{describe(cert)} signs other certificates but is not a CA")

    @staticmethod
    def _check_time(cert: x509.Certificate, at: dt.datetime) -> None:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise VerificationError(
                "validity",
                f"{describe(cert)} is valid {cert.not_valid_before_utc.isoformat()} .. "
                f"{cert.not_valid_after_utc.isoformat()}, not at {at.isoformat()}",
            )


def check_revocation(
    chain: Sequence[x509.Certificate], crls: Iterable[x509.CertificateRevocationList], at: dt.datetime
) -> None:
    """Refuse a chain certificate listed on a supplied CRL whose signature verifies with its issuer.

    A CRL that does not belong to this chain is ignored; one that belongs but has expired at `at` is
    a `validity` failure (stale revocation data must not look like "not revoked").
    """
    for crl in crls:
        issuers = [c for c in chain if c.subject == crl.issuer]
        issuer = next((c for c in issuers if crl.is_signature_valid(c.public_key())), None)  # type: ignore[arg-type]
        if issuer is None:
            continue
        next_update = crl.next_update_utc
        if next_update is not None and at > next_update:
            raise VerificationError(
                "validity", f"CRL of {crl.issuer.rfc4514_string()} expired {next_update.isoformat()}, before {at.isoformat()}"
            )
        for cert in chain:
            if cert.issuer == crl.issuer and crl.get_revoked_certificate_by_serial_number(cert.serial_number):
                raise VerificationError("revocation", f"{describe(cert)} is revoked by the CRL of {crl.issuer.rfc4514_string()}")


# One verifier per process: the link cache is what makes warm verification cheap.
CHAINS = ChainVerifier()
