"""`python -m enclave_runtime verify | seal | audit verify ...` (see `enclave_runtime.cli`)."""

from enclave_runtime.cli import main

raise SystemExit(main())
