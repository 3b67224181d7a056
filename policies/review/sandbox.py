"""Run a Pulumi Python program in its own environment, in a subprocess, and bring back what it declared.

Why a subprocess with the program's own Python:
- the program imports what ITS requirements give it (`pulumi_random`, an older azure-native, ...),
  not what ccp's environment happens to have;
- none of the review's modules can collide with the program's (a program-local `config.py`);
- whatever the program does to its process (`sys.exit`, `os._exit`, a crash, a hang) ends or is
  ended in the child; the review reports it in one line and exits 2.

The environment, in this order:
1. `runtime.options.virtualenv` of Pulumi.yaml, when that directory has a Python (what `pulumi
   preview` would use);
2. else, when the program lists requirements (`requirements.txt`, or `[project] dependencies` of
   `pyproject.toml`), a virtualenv built from them with pip, cached by the hash of the requirement
   set and the Python version under `$CCP_REVIEW_CACHE` (default `~/.cache/ccp-review/venvs/`), so
   only the first review of a requirement set installs anything;
3. else the review's own Python (it has pulumi, pulumi_aws, pulumi_azure_native, pulumi_gcp and
   pulumi_kubernetes).

Into that interpreter goes the harness: `harness.py`, `mocks.py` and `fakes/` copied as the package
`_ccp_review` into a temporary directory (the script's directory, so nothing is installed and
`PYTHONPATH` is not needed). It needs only the `pulumi` SDK the program already depends on. The
recording comes back as JSON in a file (the program's stdout is its own); the policy packs then run
here, in ccp's environment, on the recorded resources.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.review import project as project_mod
from policies.review.fakes import ANSWERS_FILE
from policies.review.mocks import Recording

DEFAULT_TIMEOUT = 300.0
INSTALL_TIMEOUT = 900.0
CACHE_ENV = "CCP_REVIEW_CACHE"
READY = ".ccp-review-ready"  # written into a cached virtualenv once its requirements are installed
REVIEW_DIR = Path(__file__).resolve().parent
REPO_ROOT = REVIEW_DIR.parents[1]
# What the child gets: path in the shipped `_ccp_review` package <- source file.
SHIPPED = {
    "harness.py": REVIEW_DIR / "harness.py",
    "mocks.py": REVIEW_DIR / "mocks.py",
    "tokens.py": REVIEW_DIR / "tokens.py",
    **{f"fakes/{p.name}": p for p in sorted((REVIEW_DIR / "fakes").glob("*.py"))},
    # fakes/azure.py builds attestation URIs with it; its only import is `typing`.
    "fakes/maa_regions.py": REPO_ROOT / "components" / "attestation" / "maa_regions.py",
}
ENTRY = "import sys\nfrom _ccp_review.harness import main\nmain(sys.argv)\n"
# Variables of the review's own process that must not leak into the program's interpreter.
_DROPPED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH", "VIRTUAL_ENV", "__PYVENV_LAUNCHER__")


class SandboxError(Exception):
    """The program's environment cannot be had; each problem is one line saying why and what to do."""

    def __init__(self, *problems: str):
        self.problems = list(problems)
        super().__init__("\n".join(problems))


@dataclass
class Environment:
    python: Path
    source: str  # one line for the report: where this interpreter comes from
    seconds: float = 0.0  # time spent building it (0 when it existed)


@dataclass
class Run:
    recording: Recording | None
    problems: list[str]
    kind: str  # "ok", "config" (problems are ccp config paths), "exit", "failed", "environment", "timeout"
    environment: Environment | None = None
    seconds: float = 0.0
    output: str = ""  # what the program printed (stdout and stderr)


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def cache_root() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ccp-review" / "venvs"


def requirements(directory: Path) -> tuple[Path, list[str]] | None:
    """The program's requirement set: the lines of requirements.txt, or pyproject.toml's
    `[project] dependencies`; None when it declares none."""
    text_file = directory / "requirements.txt"
    if text_file.is_file():
        lines = [line.split(" #")[0].strip() for line in text_file.read_text(encoding="utf-8").splitlines()]
        return text_file, [line for line in lines if line and not line.startswith("#")]
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SandboxError(f"{project_mod.shown(pyproject)}: not valid TOML ({error}); fix the syntax there")
        deps = (data.get("project") or {}).get("dependencies")
        if isinstance(deps, list) and deps:
            return pyproject, [str(d) for d in deps]
    return None


def requirement_hash(requirement_lines: list[str], python: str | None = None) -> str:
    """Same requirement set (order and spacing aside) on the same Python -> same cached environment."""
    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    normal = sorted({re.sub(r"\s+", "", line).lower() for line in requirement_lines})
    return hashlib.sha256("\n".join([f"python {python}", *normal]).encode()).hexdigest()[:20]


_PIP_FAILURES = (
    re.compile(r"No matching distribution found for (\S+)"),
    re.compile(r"Could not find a version that satisfies the requirement (\S+)"),
    re.compile(r"Failed to build (\S+)"),
    re.compile(r"Failed building wheel for (\S+)"),
    re.compile(r"Invalid requirement: '?([^'\n]+)'?"),
)
_OFFLINE = re.compile(r"Failed to establish a new connection|Temporary failure in name resolution|"
                      r"Network is unreachable|Max retries exceeded")


def pip_failure(output: str) -> str:
    """The requirement pip could not install, and why, in a few words."""
    for pattern in _PIP_FAILURES:
        found = pattern.search(output)
        if found:
            reason = "the package index cannot be reached (offline?)" if _OFFLINE.search(output) else (
                "no such package or version on the package index" if "satisf" in pattern.pattern
                or "matching" in pattern.pattern else "it does not build or is malformed"
            )
            return f"requirement {found.group(1).rstrip(')')!r} could not be installed: {reason}"
    if _OFFLINE.search(output):
        return "the package index cannot be reached (offline?)"
    last = [line.strip() for line in output.splitlines() if line.strip()]
    return f"pip failed: {last[-1] if last else 'no output'}"


def _build(source: Path, lines: list[str], target: Path) -> None:
    """A virtualenv at `target` with the requirement set. Built in place under an exclusive lock
    (`<target>.lock`) and marked ready only at the end, so concurrent reviews build it once and an
    interrupted build is started over rather than used."""
    import fcntl

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / READY).is_file() and _venv_python(target) is not None:
            return  # another review built it while this one waited
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True,
                           capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            python = _venv_python(target)
            assert python is not None
            args = ["-r", str(source)] if source.name == "requirements.txt" else list(lines)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", *args],
                cwd=source.parent, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=_child_env(),
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(
                f"{project_mod.shown(source)}: installing the program's requirements took more than "
                f"{INSTALL_TIMEOUT:.0f} s; create its virtualenv yourself (runtime.options.virtualenv)"
            ) from None
        except subprocess.CalledProcessError as error:
            raise SandboxError(
                f"cannot create a virtualenv with {sys.executable}: {(error.stderr or '').strip()[-300:]}"
            ) from None
        if done.returncode != 0:
            raise SandboxError(
                f"{project_mod.shown(source)}: cannot build the program's environment: "
                f"{pip_failure(done.stdout + done.stderr)}; fix the requirement, or create the program's "
                "virtualenv yourself and name it in Pulumi.yaml (runtime.options.virtualenv)"
            )
        (target / READY).write_text("\n".join(lines) + "\n")


def environment(proj: project_mod.Project) -> Environment:
    """The interpreter the program runs in (see the module's docstring for the order)."""
    declared = (proj.directory / proj.virtualenv) if proj.virtualenv else None
    python = _venv_python(declared) if declared is not None else None
    if python is not None:
        return Environment(python, f"the program's virtualenv {project_mod.shown(declared)} (Pulumi.yaml)")
    found = requirements(proj.directory)
    if found is None:
        return Environment(Path(sys.executable), "the review's own environment (the program declares no requirements)")
    source, lines = found
    target = cache_root() / requirement_hash(lines)
    python = _venv_python(target)
    shown_source = project_mod.shown(source)
    if python is not None and (target / READY).is_file():
        return Environment(python, f"a cached virtualenv built from {shown_source} ({target})")
    started = time.perf_counter()
    print(f"ccp review: building the program's environment from {shown_source} in {target} "
          "(once for this requirement set; later reviews reuse it)", file=sys.stderr, flush=True)
    _build(source, lines, target)
    python = _venv_python(target)
    assert python is not None
    return Environment(python, f"a virtualenv built from {shown_source} ({target})",
                       time.perf_counter() - started)


def answers(proj: project_mod.Project) -> dict[str, dict[str, Any]]:
    """The program's own invoke answers (ANSWERS_FILE beside Pulumi.yaml): token -> result object."""
    path = proj.directory / ANSWERS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SandboxError(f"{project_mod.shown(path)}: not valid JSON ({error}); fix the syntax there") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in data.items()):
        raise SandboxError(
            f"{project_mod.shown(path)}: must map invoke tokens to result objects, e.g. "
            '{"aws:ec2/getAmi:getAmi": {"id": "ami-0123456789abcdef0", "architecture": "x86_64"}}'
        )
    return data


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ship(directory: Path) -> Path:
    """The harness package and its entry script in `directory`; returns the script."""
    package = directory / "_ccp_review"
    (package / "fakes").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name, source in SHIPPED.items():
        shutil.copyfile(source, package / name)
    entry = directory / "ccp_review_harness.py"
    entry.write_text(ENTRY)
    return entry


def _kill(process: subprocess.Popen[str]) -> str:
    """Stop the program's process group (it runs in a session of its own); what it printed."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if process.poll() is None:
            process.kill()
    try:
        output, _ = process.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        return ""
    return output or ""


def _tail(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return f"; its last output: {lines[-1][:300]}" if lines else ""


def record(
    proj: project_mod.Project,
    timeout: float = DEFAULT_TIMEOUT,
    env: Environment | None = None,
    paths: tuple[Path, ...] = (),
) -> Run:
    """Run the program's `__main__` as a preview under the recording mocks, in its own interpreter.

    `paths`: directories appended to the program's `sys.path` (after its own directory, so its own
    modules still come first): ccp stacks get this repository, whose components they are built from."""
    started = time.perf_counter()
    try:
        env = env or environment(proj)
        request = {
            "main": str(proj.main), "project": proj.name, "stack": proj.stack,
            "config": proj.config, "secret_keys": proj.secret_keys, "answers": answers(proj),
            "paths": [str(p) for p in paths],
        }
    except SandboxError as error:
        return Run(None, error.problems, "environment")
    with tempfile.TemporaryDirectory(prefix="ccp-review-") as tmp:
        entry = ship(Path(tmp))
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        process = subprocess.Popen(
            [str(env.python), str(entry), str(request_path), str(result_path)],
            cwd=proj.directory, env=_child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            output = _kill(process)
            if not result_path.is_file():
                return Run(None, [
                    f"the program did not finish within {timeout:g} s (stopped; a hang, or waiting for input, "
                    "the network or a lock?); no report was written; give --timeout SECONDS if it needs longer"
                ], "timeout", env, time.perf_counter() - started)
            # It finished, but left a process holding its output open: that one is stopped now.
        except BaseException:
            _kill(process)
            raise
        else:
            _kill(process)  # whatever the program started in the background ends with it
        seconds = time.perf_counter() - started
        if not result_path.is_file():
            status = process.returncode
            how = f"was killed by signal {-status}" if status < 0 else f"ended its process with status {status}"
            return Run(None, [
                f"the program {how} before the review finished (os._exit, a crash of the interpreter, or "
                f"out of memory){_tail(output)}"
            ], "exit", env, seconds, output)
        result = json.loads(result_path.read_text(encoding="utf-8"))
    if result["kind"] != "ok":
        return Run(None, list(result["problems"]), result["kind"], env, seconds, output)
    return Run(Recording.from_data(result["recording"]), [], "ok", env, seconds, output)
