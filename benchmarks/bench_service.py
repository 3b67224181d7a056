"""`make bench` (service): the attested query service under load, on this machine, in one run.

A server process (`enclave_runtime.serve`, uvicorn, one event loop, simulated Nitro evidence) and this
load generator (raw asyncio TLS 1.3 + HTTP/1.1 keep-alive, uvloop when present) share the machine:
- fixed rate: `target_rps` (default 1000/s) for `duration_s` (default 10 s; CCP_BENCH_SERVICE_SECONDS=60
  for the issue's run), open loop: each request is due at start + i/rate and its latency is counted from
  when it was due, so a stalled server shows up as latency (no coordinated omission);
- max rate: closed loop over many connections for a few seconds, requests completed per second;
- the same max-rate run against the identical service without attestation (no evidence endpoint, the
  client skips verification), alternating with the attested one, so the ratio is same-run.
Every connection of the attested runs is attested once (fresh nonce, verify + validate + TLS-key binding,
the same `enclave_runtime.client.Verifier` the client uses) before it sends any query.

Writes `out/bench-service.json` with exactly {"target_rps", "duration_s", "achieved_rps", "p50_ms",
"p99_ms", "errors", "max_rps", "plain_max_rps"}. Goals (printed, not asserted): p99 < 200 ms and 0
errors at 1000/s; max ≥ 5000/s; attested ≥ 0.8× plain.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "bench-service.json"
BODY = json.dumps({"inputs": [[1.0, 2.0, 3.0, 4.0]]}).encode()
REQUEST = (b"POST /v1/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
FIXED_CONNECTIONS = 32  # enough that 1000/s at a few ms each never waits for a free connection
MAX_CONNECTIONS = 64
MAX_SECONDS = 2.0
# Attested and plain rounds alternate and the median of each is kept: on a shared machine the noise
# comes in bursts, and alternating short rounds exposes both variants to the same bursts.
MAX_ROUNDS = 5


# --- server (child process) ----------------------------------------------------------------------------


def _child(port: int, attested: bool, root_out: str) -> None:
    from cryptography.hazmat.primitives import serialization

    from enclave_runtime.serve import DEMO_MODEL, Service, Settings, SimulatedNitroCollector, TlsIdentity, build_server
    from enclave_runtime.simulate.nitro import image_pcrs

    collector = SimulatedNitroCollector(pcrs=image_pcrs()) if attested else None
    if collector is not None:
        Path(root_out).write_bytes(collector.sim.root.public_bytes(serialization.Encoding.PEM))
    service = Service(TlsIdentity.generate(), collector, DEMO_MODEL)
    build_server(service, Settings(port=port, log_level="error")).run()


@dataclass
class Server:
    attested: bool
    port: int
    root: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_service", "--child", str(self.port),
             "attested" if self.attested else "plain", str(self.root)],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if asyncio.run(_ready(self.port)):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the {'attested' if self.attested else 'plain'} server did not become ready on :{self.port}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- load generator ------------------------------------------------------------------------------------


class Connection:
    """One keep-alive TLS connection, attested once if a verifier is given."""

    def __init__(self, port: int, verifier: object | None) -> None:
        self.port, self.verifier = port, verifier
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def open(self) -> None:
        from enclave_runtime.client import attestation_request, client_context

        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=client_context(),
                                                                 server_hostname="bench")
        if self.verifier is None:
            return
        certificate = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        nonce = secrets.token_bytes(32)
        self.writer.write(attestation_request("bench", nonce))
        status, body = await self._response()
        if status != 200:
            raise RuntimeError(f"evidence request answered {status}")
        self.verifier.check(certificate, nonce, body)  # type: ignore[attr-defined]  # raises AttestationRefused

    async def _response(self) -> tuple[int, bytes]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def query(self) -> int:
        self.writer.write(REQUEST)
        status, _ = await self._response()
        return status

    def close(self) -> None:
        self.writer.close()


async def _ready(port: int) -> bool:
    from enclave_runtime.client import client_context

    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=client_context(), server_hostname="bench"), 2)
    writer.write(b"GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    return head.startswith(b"HTTP/1.1 200")


async def _connections(port: int, verifier: object | None, count: int) -> list[Connection]:
    conns = [Connection(port, verifier) for _ in range(count)]
    for i in range(0, count, 8):  # a few handshakes at a time, as clients arrive
        await asyncio.gather(*(c.open() for c in conns[i:i + 8]))
    return conns


async def fixed_rate(port: int, verifier: object | None, rate: float, seconds: float) -> dict[str, float]:
    conns = await _connections(port, verifier, FIXED_CONNECTIONS)
    total = int(rate * seconds)
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker(conn: Connection) -> None:
        nonlocal errors
        while (due := await queue.get()) is not None:
            try:
                status = await conn.query()
            except Exception:
                status = 0
                conn.close()
                try:
                    await conn.open()
                except Exception:
                    pass
            if status != 200:
                errors += 1
            latencies.append(time.perf_counter() - due)

    workers = [asyncio.create_task(worker(c)) for c in conns]
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.001:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    latencies.sort()
    return {
        "achieved_rps": round((total - errors) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3, 2),
        "errors": errors,
    }


async def max_rate(port: int, verifier: object | None, seconds: float) -> tuple[float, int]:
    conns = await _connections(port, verifier, MAX_CONNECTIONS)
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def worker(conn: Connection) -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            try:
                ok = await conn.query() == 200
            except Exception:
                ok = False
            done += ok
            errors += not ok
            if not ok:
                return

    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return done / elapsed, errors


def _verifier(root: Path) -> object:
    from enclave_runtime.attest import Collateral, TrustStore
    from enclave_runtime.client import Verifier
    from enclave_runtime.policy import Policy
    from enclave_runtime.simulate.nitro import image_pcrs

    policy = Policy.load({"environment": "dev", "measurements": {"version": "1", "nitro": {"pcr0": image_pcrs()[0].hex()}}})
    return Verifier(policy, TrustStore(simulation_roots=Collateral.from_files([root]).certificates))


def main() -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    seconds = float(os.environ.get("CCP_BENCH_SERVICE_SECONDS", "10"))
    rate = float(os.environ.get("CCP_BENCH_SERVICE_RPS", "1000"))
    with tempfile.TemporaryDirectory() as tmp:
        attested = Server(True, _free_port(), Path(tmp) / "root.pem")
        plain = Server(False, _free_port(), Path(tmp) / "unused.pem")
        attested.start()
        plain.start()
        try:
            verifier = _verifier(attested.root)
            fixed = asyncio.run(fixed_rate(attested.port, verifier, rate, seconds))
            rounds: dict[str, list[float]] = {"attested": [], "plain": []}
            max_errors = 0
            for _ in range(MAX_ROUNDS):
                for name, server, v in (("attested", attested, verifier), ("plain", plain, None)):
                    rps, errs = asyncio.run(max_rate(server.port, v, MAX_SECONDS))
                    rounds[name].append(rps)
                    max_errors += errs
            best = {name: statistics.median(values) for name, values in rounds.items()}
        finally:
            attested.stop()
            plain.stop()
    result = {
        "target_rps": rate, "duration_s": seconds, **fixed,
        "max_rps": round(best["attested"], 1), "plain_max_rps": round(best["plain"], 1),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    ratio = best["attested"] / best["plain"] if best["plain"] else 0.0
    print(f"service, fixed rate {rate:.0f}/s for {seconds:.0f} s (attested, {FIXED_CONNECTIONS} keep-alive connections): "
          f"achieved {fixed['achieved_rps']}/s, p50 {fixed['p50_ms']} ms, p99 {fixed['p99_ms']} ms, "
          f"{fixed['errors']} errors  [goal p99 < 200 ms, 0 errors: "
          f"{'met' if fixed['p99_ms'] < 200 and fixed['errors'] == 0 else 'NOT met'}]")
    print(f"service, max rate ({MAX_CONNECTIONS} connections, median of {MAX_ROUNDS} alternating {MAX_SECONDS:.0f} s rounds): attested "
          f"{best['attested']:.0f}/s [goal ≥ 5000: {'met' if best['attested'] >= 5000 else 'NOT met'}], plain "
          f"{best['plain']:.0f}/s, ratio {ratio:.2f} [goal ≥ 0.8: {'met' if ratio >= 0.8 else 'NOT met'}]"
          + (f", {max_errors} errors" if max_errors else ""))
    print("  rounds/s: " + "; ".join(f"{k} {', '.join(f'{v:.0f}' for v in vs)}" for k, vs in rounds.items()))
    print(f"  -> {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), sys.argv[3] == "attested", sys.argv[4])
        raise SystemExit(0)
    raise SystemExit(main())
