"""The ML runtime stands alone: no IaC module is loaded, and importing the package loads no ML framework
(so the verify path of enclave_runtime stays as small as before)."""

from __future__ import annotations

import subprocess
import sys

IAC = ("pulumi", "components", "policies", "standins", "stacks")
FRAMEWORKS = ("flwr", "opendp", "tenseal", "mpyc", "sklearn")


def loaded(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return {name.split(".")[0] for name in out}


def test_every_ml_module_loads_without_the_iac() -> None:
    roots = loaded("import enclave_runtime.ml.fl, enclave_runtime.ml.dp, enclave_runtime.ml.he, enclave_runtime.ml.mpc")
    assert roots.isdisjoint(IAC), roots & set(IAC)
    assert {"flwr", "numpy"} <= roots


def test_the_package_and_the_verifier_load_no_ml_framework() -> None:
    roots = loaded("import enclave_runtime.ml, enclave_runtime.ml.attestation, enclave_runtime.ml.config")
    assert roots.isdisjoint(FRAMEWORKS), roots & set(FRAMEWORKS)
