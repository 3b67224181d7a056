"""`make measurements` (tools/measurements.py) and the image definitions (images/).

What is checked: the PCR8 formula against an independent computation (openssl), the CCE policy hash as
config validation computes it, the written fragment parsed by the real stack model, placeholders and
production-unsafe launch policies refused, missing tools reported by name, the hashed requirements
covering every runtime pin, and the Nitro entrypoint's relay.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from enclave_runtime.measurements import cce_policy_host_data
from images import lock
from stacks import config
from tools import measurements as tool

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
OVMF = Path("/usr/share/ovmf/OVMF.fd")  # Debian's `ovmf` package


def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ccp enclave signer (test)")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA384()))


def _hex(seed: str, length: int = 96) -> str:
    return hashlib.sha384(seed.encode()).hexdigest()[:length]


# --- PCR8 ---------------------------------------------------------------------------------------------


def test_pcr8_is_the_register_extended_once_with_the_certificate_digest() -> None:
    cert = _certificate()
    der, pem = cert.public_bytes(Encoding.DER), cert.public_bytes(Encoding.PEM)
    expected = hashlib.sha384(bytes(48) + hashlib.sha384(der).digest()).hexdigest()
    assert tool.pcr8(pem) == tool.pcr8(der) == expected
    assert len(expected) == 96 and expected != hashlib.sha384(der).hexdigest()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_pcr8_matches_an_independent_openssl_computation(tmp_path: Path) -> None:
    pem = tmp_path / "cert.pem"
    pem.write_bytes(_certificate().public_bytes(Encoding.PEM))
    der = subprocess.run(["openssl", "x509", "-in", str(pem), "-outform", "DER"], capture_output=True, check=True).stdout
    inner = subprocess.run(["openssl", "dgst", "-sha384", "-binary"], input=der, capture_output=True, check=True).stdout
    outer = subprocess.run(["openssl", "dgst", "-sha384", "-binary"], input=bytes(48) + inner,
                           capture_output=True, check=True).stdout
    assert tool.pcr8(pem.read_bytes()) == outer.hex()


def test_pcr8_refuses_what_is_not_a_certificate() -> None:
    with pytest.raises(tool.Unusable, match="not an X.509 certificate"):
        tool.pcr8(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_nitro_pcrs_read_from_describe_eif_output() -> None:
    describe = {"EifVersion": 4, "Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": _hex("0").upper(),
                                                   "PCR1": _hex("1"), "PCR2": _hex("2")}}
    assert tool.nitro_pcrs(describe) == {"pcr0": _hex("0"), "pcr1": _hex("1"), "pcr2": _hex("2")}
    with pytest.raises(tool.Unusable, match="96 hex"):
        tool.nitro_pcrs({"Measurements": {"PCR0": "abc"}})


# --- CCE policy hash ----------------------------------------------------------------------------------


def test_cce_host_data_is_sha256_of_the_decoded_policy_as_config_checks_it() -> None:
    rego = b'package policy\napi_version := "0.10.0"\n'
    policy = base64.b64encode(rego).decode()
    assert cce_policy_host_data(policy) == hashlib.sha256(rego).hexdigest()
    # the shipped dev stack's pair is consistent under the same function
    snp = config.read_stack_file(ROOT / "Pulumi.dev.yaml")["collaboration"]["measurements"]["sevSnp"]
    assert cce_policy_host_data(snp["ccePolicy"]) == snp["hostData"]


def test_cce_policy_found_in_the_template_acipolicygen_filled() -> None:
    template = json.loads((IMAGES / "aci/template.json").read_text())
    assert tool.find_cce_policy(template) is None  # not generated yet: nothing to measure
    template["resources"][0]["properties"]["confidentialComputeProperties"]["ccePolicy"] = "cG9saWN5"
    assert tool.find_cce_policy(template) == "cG9saWN5"


# --- end to end: the fragment, parsed by the real model -----------------------------------------------


def _clean_images(tmp_path: Path) -> Path:
    """images/ with the placeholders replaced by a (fake) pinned digest: what a pinned tree looks like."""
    images = tmp_path / "images"
    shutil.copytree(IMAGES, images)
    for path in images.rglob("*"):
        if path.is_file() and (path.name == "Dockerfile" or path.suffix == ".json"):
            path.write_text(path.read_text().replace("REPLACE_ME.azurecr.io", "example.azurecr.io")
                            .replace("sha256:REPLACE_ME", "sha256:" + "ab" * 32))
    return images


def _oci_layout(root: Path, labels: dict[str, str]) -> tuple[Path, str]:
    blobs = root / "blobs/sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest

    config_blob = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Labels": labels}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": tool.OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config_blob), "size": len(config_blob)},
                           "layers": []}).encode()
    digest = put(manifest)
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": tool.OCI_MANIFEST, "digest": digest, "size": len(manifest)}]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return root, digest


PROD_LABELS = {"tee.launch_policy.allow_cmd_override": "false", "tee.launch_policy.allow_env_override": "",
               "tee.launch_policy.log_redirect": "debugonly"}


def _inputs(tmp_path: Path, labels: dict[str, str] = PROD_LABELS) -> tuple[list[str], dict[str, str]]:
    cert = _certificate()
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "describe.json").write_text(json.dumps({"Measurements": {
        "HashAlgorithm": "Sha384 { ... }", "PCR0": _hex("a"), "PCR1": _hex("b"), "PCR2": _hex("c")}}))
    layout, digest = _oci_layout(tmp_path / "oci", labels)
    rego = b'package policy\nallow_runtime_logging := false\n'
    template = json.loads((IMAGES / "aci/template.json").read_text())
    template["resources"][0]["properties"]["confidentialComputeProperties"]["ccePolicy"] = (
        base64.b64encode(rego).decode())
    (tmp_path / "template.json").write_text(json.dumps(template))
    args = ["--describe-eif", str(tmp_path / "describe.json"), "--signing-cert", str(tmp_path / "cert.pem"),
            "--oci", str(layout), "--aci-template", str(tmp_path / "template.json"), "--version", "2026.12.1"]
    expected = {"pcr0": _hex("a"), "pcr8": tool.pcr8(cert.public_bytes(Encoding.DER)), "digest": digest,
                "hostData": hashlib.sha256(rego).hexdigest()}
    return args, expected


@pytest.mark.parametrize("stack", ["dev", "prod", "hospitals", "banks"])
def test_fragment_is_accepted_by_the_stack_model(tmp_path: Path, stack: str) -> None:
    args, expected = _inputs(tmp_path)
    out = tmp_path / f"measurements-{stack}.yaml"
    code = tool.main(["--stack", stack, "--images", str(_clean_images(tmp_path)), "--out", str(out), *args])
    assert code == 0, out.with_name(out.name.replace(".yaml", ".partial.yaml")).read_text()
    fragment = yaml.safe_load(out.read_text())["measurements"]
    raw = config.read_stack_file(ROOT / f"Pulumi.{stack}.yaml")
    need = tool.required(raw["collaboration"])
    assert set(fragment) == {"version", *need}
    assert fragment["nitro"]["pcr0"] == expected["pcr0"]
    assert fragment["nitro"]["pin"] == raw["collaboration"]["measurements"]["nitro"]["pin"]
    if "confidentialSpace" in need:
        assert fragment["confidentialSpace"] == {"imageDigests": [expected["digest"]]}
    if "sevSnp" in need:
        assert fragment["sevSnp"]["hostData"] == expected["hostData"]
    edited = copy.deepcopy(raw)
    edited["collaboration"]["measurements"] = fragment
    settings = config.validate(edited)  # the real model (pydantic), as `pulumi up` and the review parse it
    assert settings.collaboration.measurements.version == "2026.12.1"


def test_oci_tar_gives_the_same_digest_as_the_directory(tmp_path: Path) -> None:
    import tarfile

    layout, digest = _oci_layout(tmp_path / "oci", PROD_LABELS)
    with tarfile.open(tmp_path / "image.tar", "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    assert tool.image_digest(tool.OciLayout(tmp_path / "image.tar"))[0] == digest
    assert tool.image_digest(tool.OciLayout(layout))[0] == digest


# --- refusals -------------------------------------------------------------------------------------------


def test_placeholders_refused_and_no_signable_fragment_written(tmp_path: Path, capsys) -> None:
    args, _ = _inputs(tmp_path)
    out = tmp_path / "measurements-dev.yaml"
    assert tool.main(["--stack", "dev", "--out", str(out), *args]) == 1  # the real images/: REPLACE_ME
    printed = capsys.readouterr().out
    assert "placeholder refused" in printed and "images/aci/template.json" in printed
    assert not out.exists()
    partial = out.with_name("measurements-dev.partial.yaml").read_text()
    assert "NOT FOR SIGNING" in partial and "REPLACE_ME" in partial


BASE = "python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16"


def test_every_image_is_built_on_the_same_pinned_base_and_only_the_aci_image_reference_is_open() -> None:
    for image in ("nitro", "confidential-space", "aci"):
        text = (IMAGES / image / "Dockerfile").read_text()
        assert f"ARG BASE_IMAGE={BASE}\n" in text, image
    # The pushed ACI image's digest is a build output, filled in the template before `az confcom acipolicygen`.
    assert [hit.split(":", 1)[0] for hit in tool.placeholders(IMAGES)] == ["images/aci/template.json"]
    assert tool.placeholders(IMAGES, ["nitro", "confidentialSpace"]) == []


def test_launch_policy_labels_checked_for_production() -> None:
    assert tool.launch_policy_problems(PROD_LABELS, "prod") == []
    assert tool.launch_policy_problems({**PROD_LABELS, "tee.launch_policy.allow_cmd_override": "true"}, "dev")
    env = {**PROD_LABELS, "tee.launch_policy.allow_env_override": "DEBUG"}
    assert tool.launch_policy_problems(env, "dev") == []
    assert "allow_env_override" in tool.launch_policy_problems(env, "prod")[0]
    assert tool.launch_policy_problems({**PROD_LABELS, "tee.launch_policy.log_redirect": "always"}, "prod")


def test_prod_image_allowing_env_override_is_refused(tmp_path: Path, capsys) -> None:
    args, _ = _inputs(tmp_path, {**PROD_LABELS, "tee.launch_policy.allow_env_override": "CCP_MODEL"})
    code = tool.main(["--stack", "prod", "--images", str(_clean_images(tmp_path)),
                      "--out", str(tmp_path / "m.yaml"), *args])
    assert code == 1 and "allow_env_override='CCP_MODEL'" in capsys.readouterr().out


def test_missing_tools_and_inputs_are_named(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nitro-cli, docker, sev-snp-measure on PATH
    monkeypatch.setattr(tool.sys, "executable", str(tmp_path / "python"))  # nor next to the interpreter
    monkeypatch.setattr(tool, "DEFAULTS", {k: str(tmp_path / "absent") if isinstance(v, str) else
                                           [str(tmp_path / "absent")] for k, v in tool.DEFAULTS.items()})
    (tmp_path / "enclave.eif").write_bytes(b".eif")
    out = tmp_path / "m.yaml"
    code = tool.main(["--stack", "dev", "--images", str(_clean_images(tmp_path)), "--out", str(out),
                      "--eif", str(tmp_path / "enclave.eif"), "--version", "v1"])
    printed = capsys.readouterr().out
    assert code == 1 and not out.exists()
    assert "nitro-cli is not installed" in printed
    assert "no signing certificate" in printed  # dev pins pcr8
    assert "docker/buildx not available here: no docker client" in printed
    assert "az confcom acipolicygen" in printed
    assert "computed ccp-aws:enclaveImageSizeMib: 1 " in printed  # a 4-byte file, rounded up to 1 MiB


def test_eif_size_is_reported_as_stack_config_rounded_up_to_mib(tmp_path: Path, capsys) -> None:
    args, _ = _inputs(tmp_path)
    eif = tmp_path / "enclave.eif"
    with eif.open("wb") as handle:  # sparse: 300 MiB and one byte
        handle.truncate(300 * tool.MIB + 1)
    out = tmp_path / "measurements-dev.yaml"
    code = tool.main(["--stack", "dev", "--images", str(_clean_images(tmp_path)), "--out", str(out),
                      "--eif", str(eif), *args])
    assert code == 0 and "computed ccp-aws:enclaveImageSizeMib: 301 " in capsys.readouterr().out
    text = out.read_text()
    assert "# Stack config from the same build" in text and "ccp-aws:enclaveImageSizeMib: 301" in text
    assert "enclaveImageSizeMib" not in json.dumps(yaml.safe_load(text))  # a comment, not a measurement


def test_eif_size_not_taken_from_saved_describe_eif_output(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(tool, "DEFAULTS", {**tool.DEFAULTS, "eif": str(tmp_path / "absent.eif")})
    args, _ = _inputs(tmp_path)
    out = tmp_path / "measurements-dev.yaml"
    code = tool.main(["--stack", "dev", "--images", str(_clean_images(tmp_path)), "--out", str(out), *args])
    printed = capsys.readouterr().out
    assert code == 0  # the measurements are complete; the size is stack config, reported as not computed
    assert "NOT COMPUTED ccp-aws:enclaveImageSizeMib: no enclave image file" in printed


def test_eif_size_not_taken_from_a_default_path_eif_of_another_build(tmp_path: Path, capsys, monkeypatch) -> None:
    """The PCRs come from a saved describe-eif output: an EIF lying at the default path may be another build."""
    stale = tmp_path / "stale.eif"
    stale.write_bytes(b"an older build")
    monkeypatch.setattr(tool, "DEFAULTS", {**tool.DEFAULTS, "eif": str(stale)})
    args, _ = _inputs(tmp_path)
    code = tool.main(["--stack", "dev", "--images", str(_clean_images(tmp_path)), "--out",
                      str(tmp_path / "measurements-dev.yaml"), *args])
    printed = capsys.readouterr().out
    assert code == 0 and "NOT COMPUTED ccp-aws:enclaveImageSizeMib" in printed
    assert "computed ccp-aws:enclaveImageSizeMib" not in printed.replace("NOT COMPUTED", "")


def test_cvm_needs_sev_snp_measure_and_says_so(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(tool.sys, "executable", str(tmp_path / "python"))
    raw = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    raw["config"]["ccp:collaboration"]["workload"]["hosts"] = [{"cloud": "gcp", "region": "europe-west4",
                                                                 "tee": "sev-snp"}]
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "OVMF.fd").write_bytes(b"\0")
    code = tool.main(["--stack", "cvm", "--stack-file", str(tmp_path / "stack.yaml"), "--images", str(tmp_path),
                      "--out", str(tmp_path / "m.yaml"), "--snp-ovmf", str(tmp_path / "OVMF.fd"), "--version", "v1"])
    assert code == 1 and "sev-snp-measure is not installed" in capsys.readouterr().out


SEV_SNP_MEASURE = shutil.which("sev-snp-measure", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


@pytest.mark.skipif(SEV_SNP_MEASURE is None or not OVMF.exists(),
                    reason="needs sev-snp-measure (PyPI) and Debian's ovmf package")
def test_sev_snp_launch_digest_of_debian_ovmf(tmp_path: Path) -> None:
    args = tool.parser().parse_args(["--snp-ovmf", str(OVMF), "--snp-vcpus", "2"])
    first = tool.sev_snp_measure(args)
    assert len(first) == 96 and first == tool.sev_snp_measure(args)
    assert first != tool.sev_snp_measure(tool.parser().parse_args(["--snp-ovmf", str(OVMF), "--snp-vcpus", "4"]))
    # Debian's OVMF is the generic build: no SNP kernel-hashes table, so a measured direct boot is refused
    (tmp_path / "vmlinuz").write_bytes(b"kernel")
    kernel = tool.parser().parse_args(["--snp-ovmf", str(OVMF), "--snp-kernel", str(tmp_path / "vmlinuz"),
                                       "--snp-append", "console=ttyS0"])
    with pytest.raises(tool.Unusable, match="SNP_KERNEL_HASHES"):
        tool.sev_snp_measure(kernel)


# --- the image definitions ------------------------------------------------------------------------------


# (hashed file, source pins, pins the image leaves out: the ML lock's test-only ones)
HASHED = [
    ("requirements.hashes.txt", "enclave_runtime/requirements.txt", ()),
    ("requirements-ml.hashes.txt", "enclave_runtime/ml/requirements.lock", ("pytest", "iniconfig", "pluggy")),
]


@pytest.mark.parametrize(("hashed", "source", "excluded"), HASHED)
def test_hashed_requirements_cover_every_runtime_pin(hashed: str, source: str, excluded: tuple[str, ...]) -> None:
    pins = {n: v for n, v in lock.pins(ROOT / source) if n not in excluded}
    text = (IMAGES / hashed).read_text()
    assert f"from {source}" in text.splitlines()[0]
    blocks = {}
    for block in text.split("\n"):
        if "==" in block and not block.startswith("#"):
            name, version = block.rstrip(" \\").split("==")
            blocks[name] = version
    assert blocks == pins
    for name in pins:
        section = text.split(f"\n{name}==", 1)[1].split("\n")
        assert section[1].strip().startswith("--hash=sha256:"), name
    for line in text.splitlines():
        if "--hash=" in line:
            assert len(line.split("sha256:")[1].rstrip(" \\")) == 64


@pytest.mark.parametrize("image", ["nitro", "confidential-space", "aci"])
def test_image_definitions_are_pinned_hashed_and_timestamped(image: str) -> None:
    text = (IMAGES / image / "Dockerfile").read_text()
    assert f"ARG BASE_IMAGE={BASE}" in text and "FROM ${BASE_IMAGE}" in text
    assert "--require-hashes" in text and "--only-binary=:all:" in text
    # the ML runtime in its own venv, hashed, its tools after the runtime's python on PATH
    assert "-r /tmp/requirements-ml.hashes.txt" in text and 'ENV PATH="${PATH}:/opt/ccp-ml/bin"' in text
    assert "SOURCE_DATE_EPOCH" in text and "COPY enclave_runtime " in text
    assert '"enclave_runtime", "serve"' in text or "entrypoint.py" in text


def test_confidential_space_labels_forbid_overrides() -> None:
    text = (IMAGES / "confidential-space/Dockerfile").read_text()
    assert '"tee.launch_policy.allow_cmd_override"="false"' in text
    assert 'ARG CS_ALLOW_ENV_OVERRIDE=""' in text and 'ARG CS_LOG_REDIRECT=debugonly' in text


def test_nitro_entrypoint_relays_to_the_service() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("nitro_entrypoint", IMAGES / "nitro/entrypoint.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    service = socket.create_server(("127.0.0.1", 0))
    front = socket.create_server(("127.0.0.1", 0))  # stands in for the vsock listener

    def echo() -> None:
        conn, _ = service.accept()
        with conn:
            conn.sendall(conn.recv(1024).upper())

    threading.Thread(target=echo, daemon=True).start()
    threading.Thread(target=entry.relay, args=(front, service.getsockname()), daemon=True).start()
    with socket.create_connection(front.getsockname(), timeout=5) as client:
        client.sendall(b"attested tls bytes")
        assert client.recv(1024) == b"ATTESTED TLS BYTES"
