# Every target sets itself up: .venv is (re)built from requirements.lock whenever the lock changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ccp-installed
STACK ?= dev
PROGRAM ?= .
NAME ?=
FROM ?= banks

.PHONY: venv tools review demo test test-ml test-full mutate bench lint collaboration clean

venv: $(STAMP)

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -qq --disable-pip-version-check -r requirements.lock
	@touch $@

# The privacy-preserving ML runtime (enclave_runtime/ml) has its own environment: flwr needs protobuf 6,
# the Pulumi SDK above pins protobuf 5. .venv-ml is (re)built from its lock whenever the lock changes.
VENV_ML := .venv-ml
PY_ML := $(VENV_ML)/bin/python
STAMP_ML := $(VENV_ML)/.ccp-installed
LOCK_ML := enclave_runtime/ml/requirements.lock

$(STAMP_ML): $(LOCK_ML)
	@test -x $(PY_ML) || $(PYTHON) -m venv $(VENV_ML)
	@$(PY_ML) -m pip install -qq --disable-pip-version-check -r $(LOCK_ML)
	@touch $@

test-ml: $(STAMP_ML)
	@$(PY_ML) -m pytest tests/ml

# The software TPM the vTPM tests quote with (Debian packages; installed when missing and we are root).
# Debian's OVMF, which `make measurements` (sev-snp-measure) measures in its SEV-SNP test.
TPM_TOOLS := swtpm swtpm-tools tpm2-tools ovmf
tools:
	@command -v swtpm >/dev/null && command -v tpm2_quote >/dev/null && test -f /usr/share/ovmf/OVMF.fd || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TPM_TOOLS)) >/dev/null 2>&1 \
	      || echo "note: could not install $(TPM_TOOLS); the software-TPM tests will be skipped"; \
	  else echo "note: install $(TPM_TOOLS) (apt-get) to run the software-TPM tests"; fi; }

review: $(STAMP)
	@$(PY) -m policies.review --stack $(STACK) --program $(PROGRAM)

# A collaboration end to end on this machine: review, key-service stand-ins, sealed data, attested release.
demo: $(STAMP) $(STAMP_ML)
	@$(PY) -m standins.demo --stack $(STACK)

# The suite in ccp's environment, then the ML runtime's tests in its own (.venv-ml, built on first use).
test: $(STAMP) tools $(STAMP_ML)
	@$(PY) -m pytest -n 2 tests
	@$(PY_ML) -m pytest -q tests/ml

# The property tests at full strength (10,000 mutations of each genuine sample; minutes, not seconds).
test-full: $(STAMP) tools
	@CCP_TEST_FULL=1 CCP_HYPOTHESIS_PROFILE=full $(PY) -m pytest -n 2 tests/runtime/test_mutations.py tests/review/test_review_azure_native_v2.py

# Mutation check (not part of `test`): each edit in tools/mutations.py breaks one security promise in a
# temp copy of the repo; exits 1 if any edit survives its tests (or is stale). A few minutes on 2 cores.
mutate: $(STAMP) tools
	@$(PY) tools/mutate.py --jobs 2

bench: $(STAMP) $(STAMP_ML)
	@$(PY) -m benchmarks.bench_review
	@$(PY) -m benchmarks.bench_verify
	@$(PY) -m benchmarks.bench_keyrelease
	@$(PY) -m benchmarks.bench_seal
	@$(PY) -m benchmarks.bench_service
	@$(PY_ML) -m benchmarks.bench_ml

# ruff, then the CI workflows: GitHub's workflow schema (check-jsonschema's vendored copy, offline) and
# zizmor's security audit (offline; medium and high findings fail).
lint: $(STAMP)
	@$(PY) -m ruff check .
	@$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	@$(VENV)/bin/zizmor --offline --quiet --min-severity medium .github/workflows

collaboration: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make collaboration NAME=<name> [FROM=banks]"; exit 2; }
	@$(PY) -m stacks.new_collaboration $(NAME) --from $(FROM)

# The values the stack's key policies pin, computed from the image build outputs (images/, out/images/...)
# into out/measurements-$(STACK).yaml; what cannot be computed here is named with the missing tool, and
# the target fails (exit 1) when the stack needs it. Build inputs: MEASURE_ARGS="--eif F --signing-cert PEM
# --oci DIR --aci-template F ..." (tools/measurements.py --help).
MEASURE_ARGS ?=
.PHONY: measurements
measurements: $(STAMP)
	@$(PY) tools/measurements.py --stack $(STACK) $(MEASURE_ARGS)

clean:
	rm -rf $(VENV) $(VENV_ML) out .pytest_cache
