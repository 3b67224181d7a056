"""PID 1 of the Nitro enclave: bring up loopback, run the service, relay vsock to it.

A Nitro Enclave has no network device and its loopback starts down; the only channel is vsock to the
parent instance. This brings `lo` up, starts `python -m enclave_runtime serve <args>` on 127.0.0.1 as uid 65532, and
relays each connection on vsock port `--vsock-port` to it (the parent relays TCP to the enclave's CID).
The relay carries only TLS bytes: the attested TLS session ends inside the service. Stdlib only.

    python entrypoint.py --vsock-port 8443 -- --host 127.0.0.1 --port 8443
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SERVICE_UID = 65532  # the service never runs as root


def loopback_up(name: bytes = b"lo") -> None:
    """`ip link set lo up` without iproute2 (not in the image)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", name, 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", name, flags | IFF_UP))


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _handle(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
    _pump(client, upstream)


def relay(listener: socket.socket, target: tuple[str, int]) -> None:
    """Accept on `listener` forever; each connection is piped to `target` (both ways)."""
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_handle, args=(client, target), daemon=True).start()


def vsock_listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
    sock.bind((socket.VMADDR_CID_ANY, port))
    sock.listen(64)
    return sock


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    serve_args = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description="Nitro enclave entrypoint")
    parser.add_argument("--vsock-port", type=int, default=8443)
    args = parser.parse_args(own)
    port = int(serve_args[serve_args.index("--port") + 1]) if "--port" in serve_args else 8443

    loopback_up()
    drop = {"user": SERVICE_UID, "group": SERVICE_UID, "extra_groups": []} if os.getuid() == 0 else {}
    service = subprocess.Popen([sys.executable, "-m", "enclave_runtime", "serve", *serve_args], **drop)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: service.send_signal(s))
    listener = vsock_listener(args.vsock_port)
    threading.Thread(target=relay, args=(listener, ("127.0.0.1", port)), daemon=True).start()
    while service.poll() is None:
        time.sleep(0.5)
    return service.returncode


if __name__ == "__main__":
    raise SystemExit(main())
