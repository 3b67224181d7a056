"""The review's side of a sandboxed program run: runs inside the PROGRAM's interpreter.

`policies/review/sandbox.py` ships this module, `mocks.py` and `fakes/` (as the package
`_ccp_review`, in a temporary directory) and runs `python <tmp>/ccp_review_harness.py REQUEST RESULT`
with the program's own Python, from the program's directory. So it may import only the standard
library, the `pulumi` SDK the program depends on and its sibling modules (relative imports), and
must run on Python 3.9+.

REQUEST (JSON): main, project, stack, config, secret_keys, answers (invoke token -> result, from the
program's answers file), paths (appended to `sys.path`: ccp's repository for ccp stacks). RESULT (JSON), always written unless the process itself is ended
(`os._exit`, a signal, the timeout):
- {"kind": "ok", "recording": Recording.to_data()}
- {"kind": "config", "problems": [...]}: a ccp `ConfigError` (config-path problems, mapped to the
  stack file's lines by the caller);
- {"kind": "exit" | "failed" | "environment", "problems": [one line]}.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

PREVIEW = True  # a pull-request review is a preview: `pulumi.runtime.is_dry_run()` is true


def program_failure(error: BaseException) -> str:
    """One line for a program that raised: the exception and where, outside installed packages."""
    frames = traceback.extract_tb(error.__traceback__)
    stdlib = sysconfig.get_paths().get("stdlib") or "\0"
    where = next(
        (f"{f.filename}:{f.lineno}" for f in reversed(frames)
         if "site-packages" not in f.filename and "_ccp_review" not in f.filename
         and not f.filename.startswith(stdlib)),
        "",
    )
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"the program failed: {type(error).__name__}: {text}" + (f" (at {where})" if where else "")


def _config_problems(error: BaseException) -> list[str] | None:
    """ccp's `stacks.config.ConfigError` (the program's own module here): its `problems`, else None."""
    problems = getattr(error, "problems", None)
    if type(error).__name__ == "ConfigError" and isinstance(problems, list) and all(
        isinstance(p, str) for p in problems
    ):
        return problems
    return None


def review(request: dict[str, Any]) -> dict[str, Any]:
    try:
        from . import fakes, mocks
    except ImportError as error:
        return {
            "kind": "environment",
            "problems": [
                f"the program's Python ({sys.executable}) cannot load the Pulumi SDK: {type(error).__name__}: "
                f"{error}; add `pulumi` to the program's requirements"
            ],
        }
    fakes.add_answers(request.get("answers") or {})
    sys.path.extend(p for p in request.get("paths") or [] if p not in sys.path)
    try:
        recording = mocks.run_directory(
            Path(request["main"]),
            project=request["project"],
            stack=request["stack"],
            config=request.get("config") or {},
            secret_keys=request.get("secret_keys") or [],
            preview=PREVIEW,
        )
    except mocks.ProgramExit as error:
        return {"kind": "exit", "problems": [f"{error}" + (f" (at {error.where})" if error.where else "")]}
    except Exception as error:  # noqa: BLE001 - any program failure is reported, with its origin
        problems = _config_problems(error)
        if problems is not None:
            return {"kind": "config", "problems": problems}
        return {"kind": "failed", "problems": [program_failure(error)]}
    return {"kind": "ok", "recording": recording.to_data()}


def main(argv: list[str]) -> None:
    request_path, result_path = Path(argv[1]), Path(argv[2])
    request = json.loads(request_path.read_text(encoding="utf-8"))
    try:
        result = review(request)
        text = json.dumps(result)
    except BaseException as error:  # noqa: BLE001 - whatever happens, the caller gets one line
        text = json.dumps({"kind": "failed", "problems": [program_failure(error)]})
    partial = result_path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    # Threads the program (or the SDK) left running must not keep the process alive.
    os._exit(0)
