"""`python -m enclave_runtime seal`: a party seals a dataset with its own credentials against the AWS KMS
stand-in (the dev stack's recorded key policy decides), and the approved simulated enclave opens it.

Why here and not under tests/runtime: the stand-in enforces the key policy the review recorded, which
needs this directory's session fixture `dev_recording`.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from enclave_runtime.cli import main
from enclave_runtime.keyrelease import WrappedKey, retry
from enclave_runtime.keyrelease.factory import (
    BearerTokenCredential,
    WrapperConfigError,
    check_key_id,
    wrapper_for,
)
from enclave_runtime.seal import MAGIC, open_file
from policies.review import project
from policies.review.mocks import Recording
from policies.review.run import REPO_ROOT, ccp_settings
from standins.aws_kms import AwsStandIns, access_key_id
from standins.stack import PartyKey

STACK = REPO_ROOT / "Pulumi.dev.yaml"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/dev-demo-aws-clinic-aws-key-id"
EXPECT = {"collaboration": "dev-demo", "party": "clinic-aws", "dataset": "admissions"}
NO_SLEEP = retry.Backoff(attempts=2, sleep=lambda _: None)


@pytest.fixture(scope="module")
def standins(dev_recording: Recording) -> Iterator[AwsStandIns]:
    running = AwsStandIns(dev_recording, ccp_settings(project.load(REPO_ROOT, "dev")), backoff=NO_SLEEP)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clinic(standins: AwsStandIns) -> PartyKey:
    (key,) = [k for k in standins.party_keys if k.party == "clinic-aws"]
    return key


def _aws_env(principal: str) -> dict[str, str]:
    """Credentials for `principal` as boto3's default chain finds them, and nothing else it could find."""
    return {
        "AWS_ACCESS_KEY_ID": access_key_id(principal),
        "AWS_SECRET_ACCESS_KEY": "not-checked-by-the-stand-in",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture
def as_owner(monkeypatch: pytest.MonkeyPatch, standins: AwsStandIns, clinic: PartyKey) -> str:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    owner = standins.owners[clinic.resource.urn]
    for name, value in _aws_env(owner).items():
        monkeypatch.setenv(name, value)
    return owner


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    source = tmp_path / "admissions.csv"
    source.write_bytes(os.urandom((1 << 20) + 12345))  # more than one Tink segment
    return source


def seal_args(standins: AwsStandIns, source: Path, output: Path, *extra: str) -> list[str]:
    return [
        "seal", "--stack", str(STACK), "--party", "clinic-aws", "--dataset", "admissions",
        "--input", str(source), "--output", str(output), "--key-id", KEY_ARN, "--endpoint", standins.url, *extra,
    ]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit from inside parse_args
        code = int(exc.code or 0)
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in argv else out


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".partial"))


# --- sealing and opening --------------------------------------------------------------------------------


def test_owner_seals_and_the_approved_enclave_opens_the_same_bytes(
    capsys: pytest.CaptureFixture[str], standins: AwsStandIns, clinic: PartyKey, as_owner: str, dataset: Path, tmp_path: Path
) -> None:
    sealed = tmp_path / "admissions.sealed"
    code, out = run(capsys, seal_args(standins, dataset, sealed, "--json"))
    assert code == 0, out
    assert out == {
        "sealed": str(sealed),
        "collaboration": "dev-demo",
        "party": "clinic-aws",
        "dataset": "admissions",
        "keyId": KEY_ARN,
        "bytes": dataset.stat().st_size,
    }
    assert sealed.read_bytes().startswith(MAGIC)
    decision = standins.service.decisions[-1]
    assert (decision["action"], decision["principal"], decision["decision"]) == ("kms:Encrypt", as_owner, "allow")

    opened = open_file(sealed, tmp_path / "opened.csv", releaser=standins.releaser(clinic, "approved"), expect=EXPECT)
    assert (tmp_path / "opened.csv").read_bytes() == dataset.read_bytes()
    assert opened.bytes == dataset.stat().st_size
    assert opened.header.wrapped_key.key_id == KEY_ARN


def test_human_summary_names_the_output_and_the_key(
    capsys: pytest.CaptureFixture[str], standins: AwsStandIns, as_owner: str, dataset: Path, tmp_path: Path
) -> None:
    code, out = run(capsys, seal_args(standins, dataset, tmp_path / "out.sealed"))
    assert code == 0
    assert f"-> {tmp_path / 'out.sealed'}" in out and KEY_ARN in out and "'admissions'" in out


def test_the_enclave_role_is_not_the_owner_and_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, standins: AwsStandIns, as_owner: str,
    dataset: Path, tmp_path: Path,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key_id(standins.enclave_role))
    sealed = tmp_path / "refused.sealed"
    code, out = run(capsys, seal_args(standins, dataset, sealed, "--json"))
    assert code == 1
    assert out["sealed"] is None
    assert (out["error"]["check"], out["error"]["field"]) == ("key-release", "--key-id")
    message = out["error"]["message"]
    assert message.startswith(f"AWS KMS refused to wrap the data key under {KEY_ARN}: AccessDeniedException: ")
    assert standins.enclave_role in message and "data owner" in message
    assert not sealed.exists() and leftovers(tmp_path) == []
    code, text = run(capsys, seal_args(standins, dataset, sealed))
    assert code == 1 and text.startswith("seal: REFUSED (key-release): AWS KMS refused")


# --- unusable input: exit 2, the field named, and no request made ---------------------------------------


def _case(tmp_path: Path, dataset: Path, standins: AwsStandIns, name: str) -> tuple[list[str], str, str, str]:
    """(argv, expected check, expected field, a value the message must name)."""
    out = tmp_path / "out.sealed"
    base = seal_args(standins, dataset, out, "--json")

    def replace(option: str, value: str) -> list[str]:
        argv = list(base)
        argv[argv.index(option) + 1] = value
        return argv

    if name == "unknown-party":
        return replace("--party", "clinic-moon"), "party", "--party", "'clinic-moon'"
    if name == "undeclared-dataset":
        return replace("--dataset", "billing"), "dataset", "--dataset", "'billing'"
    if name == "dataset-of-another-party":
        return replace("--dataset", "genotypes"), "dataset", "--dataset", "parties[0].datasets[].name: admissions"
    if name == "azure-key-for-aws-party":
        url = "https://clinic.vault.azure.net/keys/data"
        return replace("--key-id", url), "key-id", "--key-id", url
    if name == "bare-key-id":
        return replace("--key-id", "dev-demo-aws-clinic-aws-key-id"), "key-id", "--key-id", "full ARN"
    if name == "missing-key-id":
        argv = list(base)
        del argv[argv.index("--key-id") : argv.index("--key-id") + 2]
        return argv, "key-id", "--key-id", "'clinic-aws' on aws"
    if name == "missing-input":
        return replace("--input", str(tmp_path / "nope.csv")), "input", "--input", "nope.csv"
    if name == "input-is-directory":
        return replace("--input", str(tmp_path)), "input", "--input", "not a regular file"
    if name == "output-is-directory":
        (tmp_path / "dir").mkdir()
        return replace("--output", str(tmp_path / "dir")), "output", "--output", "is a directory"
    if name == "output-exists":
        out.write_bytes(b"keep me")
        return base, "output", "--output", "already exists"
    if name == "output-directory-missing":
        return replace("--output", str(tmp_path / "no" / "out.sealed")), "output", "--output", str(tmp_path / "no")
    if name == "missing-stack":
        return replace("--stack", str(tmp_path / "Pulumi.nope.yaml")), "stack", "--stack", "Pulumi.nope.yaml"
    if name == "project-file-as-stack":
        return replace("--stack", str(REPO_ROOT / "Pulumi.yaml")), "stack", "ccp:collaboration", "Pulumi.<stack>.yaml"
    if name == "token-for-aws":
        return [*base, "--access-token-env", "HOME"], "credentials", "--access-token-env", "AWS takes no bearer token"
    raise AssertionError(name)


UNUSABLE = [
    "unknown-party", "undeclared-dataset", "dataset-of-another-party", "azure-key-for-aws-party", "bare-key-id",
    "missing-key-id", "missing-input", "input-is-directory", "output-is-directory", "output-exists",
    "output-directory-missing", "missing-stack", "project-file-as-stack", "token-for-aws",
]


@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_input_exits_2_naming_the_field(
    capsys: pytest.CaptureFixture[str], standins: AwsStandIns, as_owner: str, dataset: Path, tmp_path: Path, name: str
) -> None:
    argv, check, field, value = _case(tmp_path, dataset, standins, name)
    before = len(standins.service.decisions)
    code, out = run(capsys, argv)
    assert code == 2, out
    assert out == {"sealed": None, "error": {"check": check, "field": field, "message": out["error"]["message"]}}
    assert value in out["error"]["message"]
    assert len(standins.service.decisions) == before  # refused before asking the key service
    assert leftovers(tmp_path) == []
    if name == "output-exists":
        assert (tmp_path / "out.sealed").read_bytes() == b"keep me"


def test_usage_errors_keep_the_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, ["seal", "--json", "--party", "clinic-aws"])
    assert code == 2
    assert out["sealed"] is None and out["error"]["check"] == "usage"
    assert "--stack" in out["error"]["message"]


def test_a_token_on_the_command_line_is_refused_and_not_echoed(
    capsys: pytest.CaptureFixture[str], standins: AwsStandIns, dataset: Path, tmp_path: Path
) -> None:
    argv = seal_args(standins, dataset, tmp_path / "o", "--json")
    argv[argv.index("--party") + 1 : argv.index("--party") + 4] = ["clinic-azure", "--dataset", "imaging-labels"]
    argv[argv.index("--key-id") + 1] = "https://clinic.vault.azure.net/keys/data"
    argv[argv.index("--endpoint") + 1] = "https://127.0.0.1:1"
    secret = "eyJ0eXAiOiJKV1QifQ.eyJleHAiOjF9.c2ln"
    code, out = run(capsys, [*argv, "--access-token-env", secret])
    assert (code, out["error"]["check"], out["error"]["field"]) == (2, "credentials", "--access-token-env")
    assert secret not in out["error"]["message"]
    code, out = run(capsys, [*argv, "--access-token-env", "CCP_TEST_UNSET_TOKEN"])
    assert code == 2 and "CCP_TEST_UNSET_TOKEN is not set" in out["error"]["message"]
    code, out = run(capsys, argv)  # Azure without a token: how to get one
    assert code == 2 and "az account get-access-token --resource https://vault.azure.net" in out["error"]["message"]


# --- the real command line, in a process that has no Pulumi -----------------------------------------------


def test_the_command_seals_by_stack_name_without_loading_pulumi_or_the_stack_program(
    standins: AwsStandIns, clinic: PartyKey, dataset: Path, tmp_path: Path
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(STACK, work / "Pulumi.dev.yaml")
    sealed = work / "admissions.sealed"
    argv = seal_args(standins, dataset, sealed, "--json")
    argv[argv.index("--stack") + 1] = "dev"
    script = (
        "import sys; from enclave_runtime.cli import main; code = main(sys.argv[1:]); "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'pulumi', 'stacks', 'components', 'policies', 'standins'}); "
        "print(bad, file=sys.stderr); sys.exit(code if not bad else 9)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(_aws_env(standins.owners[clinic.resource.urn]), PYTHONPATH=str(REPO_ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script, *argv], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sealed"] == str(sealed)
    opened = open_file(sealed, tmp_path / "opened", releaser=standins.releaser(clinic, "approved"), expect=EXPECT)
    assert (tmp_path / "opened").read_bytes() == dataset.read_bytes() and opened.bytes == dataset.stat().st_size


# --- the factory ------------------------------------------------------------------------------------------


class _FakeKms:
    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        self.calls: list[dict[str, Any]] = []

    def encrypt(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"CiphertextBlob": b"blob", "KeyId": self.key_id, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}


ALIAS = "arn:aws:kms:eu-west-1:111122223333:alias/clinic-data"


def test_an_alias_arn_wraps_and_records_the_key_it_resolved_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    wrapper = wrapper_for("aws", ALIAS, endpoint="http://127.0.0.1:1")
    fake = _FakeKms(KEY_ARN)
    wrapper._client = fake  # type: ignore[attr-defined]
    assert wrapper.wrap(bytes(32)) == WrappedKey("aws", KEY_ARN, "SYMMETRIC_DEFAULT", b"blob")
    assert fake.calls[0]["KeyId"] == ALIAS
    wrapper._client = _FakeKms("arn:aws:kms:eu-west-1:444455556666:key/other")  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="not a key ARN in the alias's account and region"):
        wrapper.wrap(bytes(32))


@pytest.mark.parametrize(
    ("cloud", "key_id", "ok"),
    [
        ("aws", KEY_ARN, True),
        ("aws", ALIAS, True),
        ("aws", "alias/clinic-data", False),
        ("azure", "https://clinic.vault.azure.net/keys/data", True),
        ("azure", "https://clinic.vault.azure.net/keys/data/0123abcd", True),
        ("azure", "http://clinic.vault.azure.net/keys/data", False),
        ("azure", "https://clinic.vault.azure.net/secrets/data", False),
        ("gcp", "projects/p-1/locations/europe-west4/keyRings/ring/cryptoKeys/key", True),
        ("gcp", "projects/p-1/locations/europe-west4/keyRings/ring", False),
        ("gcp", KEY_ARN, False),
    ],
)
def test_key_id_shapes(cloud: str, key_id: str, ok: bool) -> None:
    if ok:
        check_key_id(cloud, key_id)
    else:
        with pytest.raises(WrapperConfigError) as refused:
            check_key_id(cloud, key_id)
        assert refused.value.field == "--key-id" and repr(key_id) in refused.value.message


def test_azure_and_gcp_wrappers_take_a_bearer_token() -> None:
    exp = 4_102_444_800
    token = "e30." + base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=") + ".sig"
    credential = BearerTokenCredential(token)
    assert credential.get_token("https://vault.azure.net/.default").expires_on == exp
    assert credential.get_token_info("https://vault.azure.net/.default").token == token
    assert token not in repr(credential)
    wrapper = wrapper_for("azure", "https://clinic.vault.azure.net/keys/data", access_token=token)
    assert wrapper.cloud == "azure"
    with pytest.raises(WrapperConfigError) as refused:
        wrapper_for("azure", "https://clinic.vault.azure.net/keys/data", access_token=token, endpoint="http://127.0.0.1:1")
    assert refused.value.field == "--endpoint"
    gcp = wrapper_for("gcp", "projects/p/locations/l/keyRings/r/cryptoKeys/k", access_token="ya29.x", endpoint="http://127.0.0.1:1")
    assert gcp.cloud == "gcp"
