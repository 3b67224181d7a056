"""The Flower launcher end to end on localhost with the pinned flwr (`.venv-ml`): `flower superlink` starts a
real `flower-superlink` on the key it bound to simulated Nitro evidence, and `flower supernode` admits that
evidence and starts a real `flower-supernode`, which then registers with the SuperLink over TLS trusting only
the admitted certificate. A SuperNode whose policy approves another image is refused and starts nothing.

flwr's ports are fixed by the launcher's commands (Fleet 9092; 9093 control, 9094 and 9095 on the node);
the test is skipped when another process holds one of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from enclave_runtime.simulate.nitro import image_pcrs

APPROVED_PCR0 = image_pcrs()[0].hex()
FLWR_PORTS = (9092, 9093, 9094, 9095)
DEADLINE = 90.0  # seconds for a process to reach a state; a bound on waiting, never an assertion on time


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def wait_for(what: str, ready: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {DEADLINE}s; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="ccp-flower-e2e-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process the test starts, each in its own process group (the launcher's evidence child and
    flwr's own subprocesses with it), ended by that group's id."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_supernode_registers_with_the_attested_superlink_and_an_unapproved_one_starts_nothing(
    workdir: Path, processes: list[subprocess.Popen[bytes]],
) -> None:
    if shutil.which("flower-superlink", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("flwr's executables are not beside this interpreter (.venv-ml)")
    busy = [port for port in FLWR_PORTS if not port_free(port)]
    if busy:
        pytest.skip(f"ports {busy} are in use: flwr's ports are fixed")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    launcher = [sys.executable, "-m", "enclave_runtime", "flower"]

    def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen([*launcher, *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
        processes.append(process)
        return process

    (workdir / "tls").mkdir()
    evidence_port = free_port()
    link_log = workdir / "superlink.log"
    start(["superlink", "--tls-dir", str(workdir / "tls"), "--name", "localhost", "--evidence-host", "127.0.0.1",
           "--evidence-port", str(evidence_port), "--simulate", "--simulation-root-out", str(workdir / "root.pem")],
          link_log)
    url = f"http://127.0.0.1:{evidence_port}/evidence"

    def serving() -> bool:
        try:
            urllib.request.urlopen(url, timeout=5).close()
        except OSError:
            return False
        return "Starting Flower SuperExec" in link_log.read_text(errors="replace")

    wait_for("the SuperLink serving its evidence and Fleet API", serving, link_log)

    def supernode(name: str, pcr0: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
        policy = workdir / f"{name}-policy.json"
        policy.write_text(json.dumps({"environment": "dev",
                                      "measurements": {"version": "1", "nitro": {"pcr0": pcr0}}}))
        (workdir / name).mkdir()
        certificate, log = workdir / name / "certificate.pem", workdir / f"{name}.log"
        process = start(["supernode", "--superlink", "localhost:9092", "--evidence-url", url, "--party", name,
                         "--policy", str(policy), "--trust-simulation-root", str(workdir / "root.pem"),
                         "--root-certificates", str(certificate)], log)
        return process, certificate, log

    refused, refused_certificate, refused_log = supernode("other", "ee" * 48)
    assert refused.wait(timeout=DEADLINE) == 1
    assert refused_log.read_text().startswith("flower supernode: REFUSED (attestation): ")
    assert "Starting Flower SuperNode" not in refused_log.read_text() and not refused_certificate.exists()

    admitted, certificate, node_log = supernode("lab", APPROVED_PCR0)
    node_id = re.compile(r"SuperNode ID: (\d+)")
    wait_for("the SuperNode's registration", lambda: node_id.search(node_log.read_text(errors="replace")) is not None
             and "Activated node_id=" in link_log.read_text(errors="replace"), node_log)
    assert admitted.poll() is None  # flower-supernode is running, connected
    assert certificate.read_bytes() == (workdir / "tls" / "certificate.pem").read_bytes()
    match = node_id.search(node_log.read_text(errors="replace"))
    assert match is not None
    activated = re.findall(r"Activated node_id=(\d+)", link_log.read_text(errors="replace"))
    assert activated == [match.group(1)]  # exactly the admitted node, over the attested TLS key
