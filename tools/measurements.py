"""`make measurements`: the values the key policies pin, computed from the build outputs, in the stack's
`measurements` format. Never invents a value: what it cannot compute here it names, with the tool that is
missing and why, and it exits non-zero when the chosen stack needs it.

    .venv/bin/python tools/measurements.py --stack dev [--eif F | --describe-eif F] [--signing-cert PEM]
        [--oci DIR|TAR] [--aci-template F | --cce-policy F] [--snp-ovmf F [--snp-kernel F ...]]
        [--version V] [--out F]

What each host's TEE needs (from `Pulumi.<stack>.yaml`: workload.hosts and the pinned Nitro registers):
- nitro: the pinned PCRs. PCR0/1/2 from `nitro-cli describe-eif` (run here on `--eif` when nitro-cli is
  installed, or its saved JSON output via `--describe-eif`); PCR8 from the signing certificate
  (`--signing-cert`): SHA-384(48 zero bytes || SHA-384(DER of the certificate)), as `nitro-cli pcr
  --signing-certificate` computes it.
- confidential-space: the image manifest digest, from the OCI layout buildx wrote (`--oci`, a directory or
  its tar); the image's launch-policy labels are checked against the stack's environment.
- confidential-containers (Azure ACI) and sev-snp on AKS: ccePolicy (base64, from `az confcom acipolicygen`,
  read from the template it filled or a file) and hostData, its SHA-256
  (`enclave_runtime.measurements.cce_policy_host_data`, the function config validation uses).
- sev-snp confidential VM: launchMeasurement with `sev-snp-measure` (PyPI) over the OVMF build, and kernel,
  initrd and command line when they are measured (OVMF built with SNP kernel hashes).
- tdx, sgx: no measuring tool is wired here (reported, never guessed).
Besides the measurements, the EIF's size in MiB (rounded up) when the EIF file is at hand: the stack's
`ccp-aws:enclaveImageSizeMib`, from which the enclave memory (>= 4x) and its fit on the instance are checked.

The build inputs must be pinned: a `REPLACE_ME` left in images/ (a base image digest, the ACI template's
image reference) refuses the sections built from it, since values measured from an unpinned build cannot be reproduced by the other parties.

Writes `out/measurements-<stack>.yaml` (a `measurements:` mapping to paste under `ccp:collaboration`) only
when every required value was computed and validated with the real model; otherwise
`out/measurements-<stack>.partial.yaml` with what was computed and, as comments, what was not and why.
Exit 0 complete, 1 something required could not be computed (listed), 2 unusable input.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from enclave_runtime.measurements import ApprovedMeasurements, cce_policy_host_data  # noqa: E402

PLACEHOLDER = "REPLACE_ME"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEXES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
LAUNCH_POLICY = "tee.launch_policy."

# Default build outputs (the paths the images' Dockerfiles and the README use).
DEFAULTS = {
    "eif": "out/images/nitro/enclave.eif",
    "describe_eif": "out/images/nitro/describe-eif.json",
    "signing_cert": "out/images/nitro/signing-cert.pem",
    "oci": ["out/images/confidential-space/oci", "out/images/confidential-space/image.tar"],
    "aci_template": "out/images/aci/template.json",
}


class Unusable(Exception):
    """An input was given but cannot be read as what it claims to be (exit 2)."""


@dataclass
class Result:
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> key -> value
    missing: list[str] = field(default_factory=list)  # "<section.key>: why (tool missing / input absent)"
    problems: list[str] = field(default_factory=list)  # refused inputs (placeholders, prod policy)
    # Stack config the build determines besides the measurements (`ccp-aws:enclaveImageSizeMib`), and why
    # such a value could not be taken from this build; neither makes the measurement set incomplete.
    config: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, section: str, key: str, value: Any) -> None:
        self.values.setdefault(section, {})[key] = value


# --- the computations ---------------------------------------------------------------------------------


def pcr8(certificate: bytes) -> str:
    """Nitro PCR8 of an enclave image signed with this certificate (PEM or DER): the PCR extended once
    from zero with the SHA-384 of the certificate's DER, i.e. SHA-384(0x00*48 || SHA-384(DER))."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        cert = (x509.load_pem_x509_certificate(certificate) if b"-----BEGIN" in certificate
                else x509.load_der_x509_certificate(certificate))
    except ValueError as exc:
        raise Unusable(f"not an X.509 certificate (PEM or DER): {exc}") from None
    der = cert.public_bytes(Encoding.DER)
    return hashlib.sha384(b"\0" * 48 + hashlib.sha384(der).digest()).hexdigest()


def nitro_pcrs(describe: dict[str, Any]) -> dict[str, str]:
    """`pcr0`.. from the JSON `nitro-cli describe-eif` / `build-enclave` prints ({"Measurements": {"PCR0":
    ...}}), lowercase, SHA-384 only."""
    measurements = describe.get("Measurements", describe)
    if not isinstance(measurements, dict):
        raise Unusable("no Measurements object (expected nitro-cli describe-eif or build-enclave JSON)")
    algorithm = str(measurements.get("HashAlgorithm", "Sha384"))
    if not algorithm.lower().startswith("sha384"):
        raise Unusable(f"HashAlgorithm {algorithm!r}: Nitro PCRs are SHA-384")
    out = {}
    for key, value in measurements.items():
        if re.fullmatch(r"PCR\d+", key):
            value = str(value).lower()
            if not re.fullmatch(r"[0-9a-f]{96}", value):
                raise Unusable(f"{key} {value!r} is not 96 hex characters")
            out[key.lower()] = value
    if not out:
        raise Unusable("no PCR values in Measurements")
    return out


EIF_SIZE_KEY = "ccp-aws:enclaveImageSizeMib"
MIB = 1024 * 1024


def eif_size_mib(eif: Path) -> int:
    """The EIF's size in MiB rounded up: the `ccp-aws:enclaveImageSizeMib` the enclave memory is sized from
    (`nitro-cli run-enclave` needs at least 4x the file; components.aws.enclave_host.enclave_memory_mib)."""
    return -(-eif.stat().st_size // MIB)


def describe_eif(eif: Path) -> dict[str, Any]:
    """Run `nitro-cli describe-eif` (raises LookupError when nitro-cli is not installed)."""
    if shutil.which("nitro-cli") is None:
        raise LookupError(
            "nitro-cli is not installed (the AWS Nitro Enclaves CLI: aws-nitro-enclaves-cli on Amazon Linux); "
            "run `nitro-cli describe-eif --eif-path <eif>` where it is and pass its output with --describe-eif")
    run = subprocess.run(["nitro-cli", "describe-eif", "--eif-path", str(eif)], capture_output=True, text=True)
    if run.returncode:
        raise Unusable(f"nitro-cli describe-eif failed: {run.stderr.strip() or run.stdout.strip()}")
    return json.loads(run.stdout)


class OciLayout:
    """An OCI image layout (directory, or the tar `buildx --output type=oci` writes)."""

    def __init__(self, path: Path):
        self.path = path
        self._tar = tarfile.open(path) if path.is_file() else None

    def read(self, name: str) -> bytes:
        if self._tar is None:
            return (self.path / name).read_bytes()
        member = self._tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member.read()

    def blob(self, digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
            raise Unusable(f"unsupported digest {digest!r}")
        data = self.read(f"blobs/sha256/{hexdigest}")
        if hashlib.sha256(data).hexdigest() != hexdigest:
            raise Unusable(f"blob {digest} does not hash to its name: the layout is corrupt")
        return data


def image_digest(layout: OciLayout, platform: str = "linux/amd64") -> tuple[str, dict[str, Any]]:
    """The image manifest digest (what Confidential Space reports as the container's image_digest) and
    the image config, from an OCI layout. An index is resolved to its one `platform` image manifest."""
    try:
        index = json.loads(layout.read("index.json"))
    except (KeyError, FileNotFoundError, json.JSONDecodeError) as exc:
        raise Unusable(f"{layout.path}: not an OCI image layout (index.json: {exc})") from None
    entries = index.get("manifests") or []
    if len(entries) != 1:
        raise Unusable(f"{layout.path}: index.json lists {len(entries)} manifests; build one image per layout")
    entry = entries[0]
    while entry.get("mediaType") in INDEXES:
        nested = json.loads(layout.blob(entry["digest"]))
        os_, _, arch = platform.partition("/")
        matches = [m for m in nested.get("manifests", [])
                   if (m.get("platform") or {}).get("os") == os_ and (m.get("platform") or {}).get("architecture") == arch]
        if len(matches) != 1:
            raise Unusable(f"{layout.path}: {len(matches)} {platform} manifests in index {entry['digest']}")
        entry = matches[0]
    if entry.get("mediaType") not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise Unusable(f"{layout.path}: {entry.get('mediaType')!r} is not an image manifest")
    manifest = json.loads(layout.blob(entry["digest"]))
    config = json.loads(layout.blob(manifest["config"]["digest"]))
    return entry["digest"], config


def buildx_status() -> str:
    """Why the OCI layout could not have been built on this machine (or that it could)."""
    if shutil.which("docker") is None:
        return "docker/buildx not available here: no docker client"
    version = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True)
    if version.returncode:
        return "docker/buildx not available here: the docker client has no buildx plugin"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode:
        return "docker/buildx not available here: no reachable docker daemon"
    return "docker buildx is available: run the build first"


def launch_policy_problems(labels: dict[str, str], environment: str) -> list[str]:
    """Confidential Space launch-policy labels a production image must carry (the operator may not
    override the command or the environment, and logs are never redirected from a production VM)."""
    get = {k.removeprefix(LAUNCH_POLICY): v for k, v in (labels or {}).items() if k.startswith(LAUNCH_POLICY)}
    problems = []
    if get.get("allow_cmd_override", "false").lower() != "false":
        problems.append("tee.launch_policy.allow_cmd_override is not false: the operator could replace the command")
    if environment != "dev":
        if get.get("allow_env_override", "").strip():
            problems.append(f"tee.launch_policy.allow_env_override={get['allow_env_override']!r}: a production "
                            "image lets the operator set no environment variable (build with it empty)")
        if get.get("log_redirect", "debugonly") == "always":
            problems.append("tee.launch_policy.log_redirect=always: production workload output must not be "
                            "redirected off the VM (use debugonly or never)")
    return problems


def find_cce_policy(document: Any) -> str | None:
    """The `ccePolicy` `az confcom acipolicygen --template-file` wrote into an ARM template."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "ccePolicy" and isinstance(value, str) and value:
                return value
            found = find_cce_policy(value)
            if found:
                return found
    elif isinstance(document, list):
        for item in document:
            found = find_cce_policy(item)
            if found:
                return found
    return None


def sev_snp_measure(args: argparse.Namespace) -> str:
    """Launch digest with the `sev-snp-measure` tool (raises LookupError when it is not installed)."""
    # The tool's script sits next to this interpreter when installed in the same venv (requirements.lock).
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    tool = args.sev_snp_measure or shutil.which("sev-snp-measure", path=search)
    if not tool:
        raise LookupError("sev-snp-measure is not installed (pip install sev-snp-measure)")
    cmd = [tool, "--mode", "snp", "--vcpus", str(args.snp_vcpus), "--vcpu-type", args.snp_vcpu_type,
           "--ovmf", str(args.snp_ovmf), "--output-format", "hex"]
    if args.snp_vmm_type:
        cmd += ["--vmm-type", args.snp_vmm_type]
    if args.snp_kernel:
        cmd += ["--kernel", str(args.snp_kernel)]
        if args.snp_initrd:
            cmd += ["--initrd", str(args.snp_initrd)]
        if args.snp_append is not None:
            cmd += ["--append", args.snp_append]
    run = subprocess.run(cmd, capture_output=True, text=True)
    digest = run.stdout.strip().splitlines()[-1].strip().lower() if run.stdout.strip() else ""
    if run.returncode or not re.fullmatch(r"[0-9a-f]{96}", digest):
        raise Unusable(f"sev-snp-measure failed: {(run.stderr or run.stdout).strip()}")
    return digest


# --- the stack ------------------------------------------------------------------------------------------


def load_stack(path: Path) -> tuple[str, dict[str, Any]]:
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    collaboration = config.get("ccp:collaboration") or {}
    return str(config.get("ccp:environment", "prod")), collaboration


def required(collaboration: dict[str, Any]) -> dict[str, list[str]]:
    """section -> keys the stack's workload hosts need (Nitro: the registers the stack pins)."""
    need: dict[str, list[str]] = {}
    measurements = collaboration.get("measurements") or {}
    for host in (collaboration.get("workload") or {}).get("hosts") or []:
        tee = host.get("tee")
        if tee == "nitro":
            pins = (measurements.get("nitro") or {}).get("pin") or ["pcr0"]
            need.setdefault("nitro", [])
            need["nitro"] += [p for p in pins if p not in need["nitro"]]
        elif tee == "confidential-space":
            need["confidentialSpace"] = ["imageDigests"]
        elif tee == "confidential-containers" or (tee == "sev-snp" and host.get("kubernetes")):
            keys = need.setdefault("sevSnp", [])
            keys += [k for k in ("ccePolicy", "hostData") if k not in keys]
        elif tee == "sev-snp":
            keys = need.setdefault("sevSnp", [])
            keys += [] if "launchMeasurement" in keys else ["launchMeasurement"]
        elif tee == "tdx":
            need["tdx"] = ["mrtd"]
        elif tee == "sgx":
            need["sgx"] = ["mrenclave"]
    return need


# The image definitions each measured section is built from.
IMAGE_DIRS: dict[str, str] = {"nitro": "nitro", "confidentialSpace": "confidential-space", "sevSnp": "aci"}


def placeholders(images: Path, sections: list[str] | None = None) -> list[str]:
    """Every build input under images/ (or only those of `sections`' images) that still holds a placeholder
    (base image digests, the template's image reference)."""
    found = []
    roots = [images] if sections is None else [images / IMAGE_DIRS[s] for s in sections if s in IMAGE_DIRS]
    paths = sorted({p for root in roots if root.exists() for p in root.rglob("*")})
    for path in paths:
        if not path.is_file() or (path.name != "Dockerfile" and path.suffix != ".json"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PLACEHOLDER in line and not line.lstrip().startswith("#"):
                found.append(f"{path.relative_to(images.parent) if images.parent in path.parents else path}:"
                             f"{number}: {line.strip()}")
    return found


def _given(value: Path | None, default: str | list[str]) -> Path | None:
    if value is not None:
        if not value.exists():
            raise Unusable(f"{value}: no such file")
        return value
    for candidate in [default] if isinstance(default, str) else default:
        if (ROOT / candidate).exists():
            return ROOT / candidate
    return None


def compute(args: argparse.Namespace, environment: str, need: dict[str, list[str]]) -> Result:
    result = Result()
    built = [s for s in need if s != "sevSnp" or "hostData" in need[s]]  # a CVM's firmware is not built here
    for hit in placeholders(args.images, built):
        result.problems.append(f"unpinned build input (placeholder refused): {hit}")

    if "nitro" in need:
        eif, saved = _given(args.eif, DEFAULTS["eif"]), _given(args.describe_eif, DEFAULTS["describe_eif"])
        pcrs: dict[str, str] = {}
        if saved is not None:
            try:
                pcrs = nitro_pcrs(json.loads(saved.read_text()))
            except json.JSONDecodeError as exc:
                raise Unusable(f"{saved}: not JSON ({exc})") from None
        elif eif is not None:
            try:
                pcrs = nitro_pcrs(describe_eif(eif))
            except LookupError as exc:
                result.missing.append(f"nitro.pcr0/pcr1/pcr2: {exc}")
        else:
            here = "nitro-cli is not installed here" if shutil.which("nitro-cli") is None else "nitro-cli is here"
            result.missing.append(
                "nitro.pcr0/pcr1/pcr2: no enclave image file: build it with `nitro-cli build-enclave` from the "
                f"image of images/nitro/Dockerfile ({here}; the build also needs a docker daemon: "
                f"{buildx_status().removeprefix('docker/buildx not available here: ')}) and pass --eif, or the "
                "saved `nitro-cli describe-eif` JSON with --describe-eif")
        # The size must come from the build the PCRs come from: the EIF they were read from, or one named
        # with --eif next to its saved describe-eif output, never a default-path EIF of another build.
        if eif is not None and (saved is None or args.eif):
            result.config[EIF_SIZE_KEY] = eif_size_mib(eif)
        else:
            result.notes.append(
                f"{EIF_SIZE_KEY}: no enclave image file to measure (--eif, or {DEFAULTS['eif']}); the saved "
                "describe-eif output does not carry the file size. Build the EIF where nitro-cli runs and pass it")
        for name in ("pcr0", "pcr1", "pcr2"):
            if name in pcrs:
                result.set("nitro", name, pcrs[name])
        cert = _given(args.signing_cert, DEFAULTS["signing_cert"])
        if cert is not None:
            value = pcr8(cert.read_bytes())
            if "pcr8" in pcrs and pcrs["pcr8"] != value:
                raise Unusable(f"PCR8 of {cert} ({value}) differs from the EIF's ({pcrs['pcr8']}): the image was "
                               "signed with another certificate")
            result.set("nitro", "pcr8", value)
        elif "pcr8" in pcrs:
            result.set("nitro", "pcr8", pcrs["pcr8"])
        elif "pcr8" in need["nitro"]:
            result.missing.append("nitro.pcr8: the stack pins pcr8 but no signing certificate was given "
                                  "(--signing-cert PEM, the certificate `nitro-cli build-enclave "
                                  "--signing-certificate` signed the image with)")
        for name in need["nitro"]:
            if name not in result.values.get("nitro", {}) and name == "pcr3":
                result.missing.append("nitro.pcr3: the parent instance's IAM role, not a build output: "
                                      "compute it with `nitro-cli pcr --input` over the role ARN")
        if result.values.get("nitro"):
            result.set("nitro", "pin", list(need["nitro"]))

    if "confidentialSpace" in need:
        oci = _given(args.oci, DEFAULTS["oci"])
        if oci is None:
            result.missing.append(
                "confidentialSpace.imageDigests: no OCI layout of the image: build it with `docker buildx build "
                "-f images/confidential-space/Dockerfile --output type=oci,...` "
                f"({buildx_status()}) and pass --oci")
        else:
            digest, config = image_digest(OciLayout(oci))
            labels = (config.get("config") or {}).get("Labels") or {}
            for problem in launch_policy_problems(labels, environment):
                result.problems.append(f"{oci}: {problem}")
            result.set("confidentialSpace", "imageDigests", [digest])

    if "sevSnp" in need:
        keys = need["sevSnp"]
        if "hostData" in keys:
            policy_file = args.cce_policy
            template = _given(args.aci_template, DEFAULTS["aci_template"]) if policy_file is None else None
            policy = None
            if policy_file is not None:
                if not policy_file.exists():
                    raise Unusable(f"{policy_file}: no such file")
                policy = policy_file.read_text().strip()
            elif template is not None:
                try:
                    policy = find_cce_policy(json.loads(template.read_text()))
                except json.JSONDecodeError as exc:
                    raise Unusable(f"{template}: not JSON ({exc})") from None
                if policy is None:
                    result.missing.append(
                        f"sevSnp.ccePolicy/hostData: {template} has no ccePolicy: run `az confcom acipolicygen "
                        "--template-file` on it first")
            else:
                result.missing.append(
                    "sevSnp.ccePolicy/hostData: no confidential-computing enforcement policy: it is generated "
                    "by `az confcom acipolicygen --template-file images/aci/template.json` (Azure CLI confcom "
                    "extension; it pulls the image's layers to hash them, so it needs the pushed image and "
                    "docker or a --tar of it; az and docker are not available here); pass the filled template "
                    "with --aci-template or the base64 policy with --cce-policy")
            if policy is not None:
                digest = cce_policy_host_data(policy)
                if digest is None:
                    raise Unusable("the CCE policy is not base64 (give it as acipolicygen prints it)")
                if "allow_runtime_logging := true" in base64.b64decode(policy).decode("utf-8", "replace") \
                        and environment != "dev":
                    result.problems.append("the CCE policy allows runtime logging (acipolicygen --debug-mode): "
                                           "refused outside dev")
                result.set("sevSnp", "ccePolicy", policy)
                result.set("sevSnp", "hostData", digest)
        if "launchMeasurement" in keys:
            if args.snp_ovmf is None:
                result.missing.append(
                    "sevSnp.launchMeasurement: no CVM firmware given (--snp-ovmf, plus --snp-kernel/--snp-initrd/"
                    "--snp-append when the firmware measures them): the launch digest covers the exact OVMF "
                    "build the host boots, which the cloud supplies, so it cannot be taken from this build alone")
            else:
                try:
                    result.set("sevSnp", "launchMeasurement", sev_snp_measure(args))
                except LookupError as exc:
                    result.missing.append(f"sevSnp.launchMeasurement: {exc}")

    if "tdx" in need:
        result.missing.append("tdx.mrtd: no TDX measuring tool is wired into this build (MRTD covers the TD "
                              "firmware the cloud supplies); take it from the vendor's published value")
    if "sgx" in need:
        result.missing.append("sgx.mrenclave: the images here are not SGX enclaves; MRENCLAVE comes from the "
                              "enclave's signed SIGSTRUCT (e.g. gramine-sgx-sigstruct-view), not built here")

    for section, keys in need.items():
        for key in keys:
            if key not in result.values.get(section, {}) and not any(
                    m.startswith(f"{section}.") and key in m.split(":", 1)[0] for m in result.missing):
                result.missing.append(f"{section}.{key}: not computed")
    return result


def render(result: Result, version: str, stack: str, complete: bool) -> str:
    document = {"version": version, **result.values}
    header = [f"# `make measurements STACK={stack}`: computed from the build outputs by tools/measurements.py.",
              "# Paste under ccp:collaboration in Pulumi.<stack>.yaml, then every party signs the contract",
              f"# (python -m stacks.contract sign --stack {stack}; stacks/contracts/{stack}.json)."]
    header += [f"# Stack config from the same build (set it in Pulumi.{stack}.yaml, not under measurements): "
               f"{key}: {value}" for key, value in result.config.items()]
    header += [f"# Stack config not taken from this build: {note}" for note in result.notes]
    if not complete:
        header.append("# INCOMPLETE - NOT FOR SIGNING. Not computed:")
        header += [f"#   - {m}" for m in result.missing]
        header += [f"#   - REFUSED: {p}" for p in result.problems]
    return "\n".join(header) + "\n" + yaml.safe_dump({"measurements": document}, sort_keys=False, width=10**6)


def _git_version() -> str | None:
    try:
        run = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True)
    except OSError:
        return None
    return f"build-{run.stdout.strip()}" if run.returncode == 0 and run.stdout.strip() else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/measurements.py", description=__doc__.splitlines()[0])
    p.add_argument("--stack", default="dev")
    p.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    p.add_argument("--version", help="measurements.version (default: build-<git commit>)")
    p.add_argument("--out", type=Path, help="default: out/measurements-<stack>.yaml")
    p.add_argument("--images", type=Path, default=ROOT / "images", help=argparse.SUPPRESS)
    p.add_argument("--eif", type=Path)
    p.add_argument("--describe-eif", type=Path, help="saved JSON of nitro-cli describe-eif / build-enclave")
    p.add_argument("--signing-cert", type=Path, help="PEM certificate the EIF is signed with (PCR8)")
    p.add_argument("--oci", type=Path, help="OCI layout directory or tar of the Confidential Space image")
    p.add_argument("--aci-template", type=Path, help="ARM template after `az confcom acipolicygen`")
    p.add_argument("--cce-policy", type=Path, help="file with the base64 CCE policy")
    p.add_argument("--snp-ovmf", type=Path)
    p.add_argument("--snp-kernel", type=Path)
    p.add_argument("--snp-initrd", type=Path)
    p.add_argument("--snp-append")
    p.add_argument("--snp-vcpus", type=int, default=1)
    p.add_argument("--snp-vcpu-type", default="EPYC-v4")
    p.add_argument("--snp-vmm-type", help="QEMU, ec2 or gce (sev-snp-measure --vmm-type)")
    p.add_argument("--sev-snp-measure", help="path of the sev-snp-measure executable")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stack_file = args.stack_file or ROOT / f"Pulumi.{args.stack}.yaml"
    out = args.out or ROOT / f"out/measurements-{args.stack}.yaml"
    partial = out.with_name(out.name.replace(".yaml", ".partial.yaml"))
    try:
        if not stack_file.exists():
            raise Unusable(f"{stack_file}: no such stack file")
        environment, collaboration = load_stack(stack_file)
        need = required(collaboration)
        if not need:
            raise Unusable(f"{stack_file}: the workload declares no host, so no measurement is needed")
        result = compute(args, environment, need)
    except Unusable as exc:
        print(f"measurements: UNUSABLE: {exc}", file=sys.stderr)
        return 2
    version = args.version or _git_version()
    if version is None:
        result.missing.append("version: no --version given and no git commit to name the build")
        version = "unversioned"
    complete = not result.missing and not result.problems
    if complete:
        try:
            ApprovedMeasurements.model_validate({"version": version, **result.values},
                                                context={"environment": environment})
        except Exception as exc:  # the real model refuses: never write a value it would not accept
            result.problems.append(f"the computed set does not validate: {exc}")
            complete = False
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in (out, partial):
        stale.unlink(missing_ok=True)
    target = out if complete else partial
    target.write_text(render(result, version, args.stack, complete))

    print(f"measurements for stack {args.stack} ({environment}), needed: "
          + ", ".join(f"{s}.{k}" for s, keys in need.items() for k in keys))
    for section, values in result.values.items():
        for key, value in values.items():
            if key in ("pin", "ccePolicy"):
                continue
            print(f"  computed {section}.{key}: {value}")
    for key, value in result.config.items():
        print(f"  computed {key}: {value} (stack config: the enclave memory is sized from it)")
    for line in result.notes:
        print(f"  NOT COMPUTED {line}")
    for line in result.missing:
        print(f"  NOT COMPUTED {line}")
    for line in result.problems:
        print(f"  REFUSED {line}")
    print(f"wrote {target.relative_to(ROOT) if ROOT in target.parents else target}"
          + ("" if complete else " (incomplete: not for signing)"))
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
