"""The attested query service (`python -m enclave_runtime serve`): HTTPS inside the TEE whose TLS key is
bound to the attestation evidence, so clients verify the TEE before they send it any data.

- `tls.TlsIdentity`: the in-memory TLS 1.3 key and certificate; evidence commits to SHA-256(spki ‖ nonce).
- `evidence`: where evidence comes from (any `enclave_runtime.evidence.Collector`; a simulated Nitro one).
- `model`: the pluggable `Model` (a linear model for now) and the declared `Outputs`.
- `access`: who may read which declared output (recipient parties bound to client-certificate keys).
- `app`: the Starlette app; `server`: uvicorn with bounded header/body time and graceful shutdown.
- `commands`: the `serve` and `query` subcommands.

Names are imported lazily: the client (`enclave_runtime.client`) uses `serve.tls` and must not need
uvicorn or Starlette.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Access": "access",
    "ATTESTATION_PATH": "app", "Limits": "app", "Service": "app", "build_app": "app",
    "SimulatedNitroCollector": "evidence",
    "DEMO_MODEL": "model", "LinearModel": "model", "Model": "model", "Outputs": "model",
    "Settings": "server", "build_server": "server",
    "BINDING_SCHEME": "tls", "TlsIdentity": "tls",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
