"""Mutation check of the security-critical code: does some test fail when a promise is broken?

Each mutation in `tools/mutations.py` is one exact edit (file, old text, new text) with the test paths
that must catch it. For each, this script applies the edit to a *copy* of the repository in a temp
directory (the checkout is never modified, so a crash or Ctrl-C cannot leave it mutated), runs the
listed tests there with this interpreter, and restores the file. A mutation

- is *killed* when the tests fail (good),
- *survives* when they still pass (a promise no test pins),
- is *stale* when its old text is not found exactly once (the code moved on: update the list).

Exit status: 0 when every mutation is killed, 1 when any survives or is stale, 2 when the unmutated
tests already fail (no verdict is possible). Run with `make mutate` (not part of `make test`).

    python tools/mutate.py [--jobs 2] [--only SUBSTRING] [--list]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.mutations import MUTATIONS, Mutation  # noqa: E402

# Not copied: the interpreter stays where it is (the copy runs it), caches and outputs are irrelevant.
IGNORE = shutil.ignore_patterns(".git", ".venv", ".venv-*", "out", "__pycache__", ".pytest_cache", ".ruff_cache", "*.pyc", ".hypothesis")
PYTEST = ("-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "0")


@dataclass
class Result:
    mutation: Mutation
    verdict: str  # killed | survived | stale | error
    seconds: float
    detail: str = ""


def copy_repo(into: Path) -> Path:
    target = into / "repo"
    shutil.copytree(REPO, target, ignore=IGNORE, symlinks=True)
    return target


def run_tests(root: Path, paths: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "CCP_HYPOTHESIS_PROFILE": os.environ.get("CCP_HYPOTHESIS_PROFILE", "bounded")}
    # The copy lives in a temp dir: point the tests at the real vendor vectors beside the checkout.
    vectors = REPO.parent / "shared" / "vectors"
    if "CCP_VECTORS" not in env and vectors.is_dir():
        env["CCP_VECTORS"] = str(vectors)
    return subprocess.run(
        [sys.executable, *PYTEST, *paths], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )


def stale_reason(root: Path, mutation: Mutation) -> str | None:
    path = root / mutation.file
    if not path.is_file():
        return f"{mutation.file} does not exist"
    count = path.read_text(encoding="utf-8").count(mutation.old)
    if count != 1:
        return f"old text found {count} times in {mutation.file} (must be exactly once)"
    missing = [p for p in mutation.tests if not (root / p.split("::", 1)[0]).exists()]
    if missing:
        return f"test paths {missing} do not exist"
    return None


def apply_and_test(root: Path, mutation: Mutation, timeout: float) -> Result:
    start = time.monotonic()
    why = stale_reason(root, mutation)
    if why is not None:
        return Result(mutation, "stale", 0.0, why)
    path = root / mutation.file
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original.replace(mutation.old, mutation.new, 1), encoding="utf-8")
        try:
            proc = run_tests(root, mutation.tests, timeout)
        except subprocess.TimeoutExpired:
            return Result(mutation, "killed", time.monotonic() - start, f"tests timed out after {timeout:.0f}s")
    finally:
        path.write_text(original, encoding="utf-8")  # always restored, even on KeyboardInterrupt
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        return Result(mutation, "survived", seconds, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "")
    if proc.returncode in (1,):  # tests failed: the mutation is caught
        failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return Result(mutation, "killed", seconds, failed[0] if failed else "")
    # 2 = interrupted/collection error, 3 = internal, 4 = usage, 5 = no tests: a broken import is caught too,
    # but say so, since it says nothing about the assertions.
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    return Result(mutation, "killed", seconds, f"pytest exit {proc.returncode}: {tail[0][:160]}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutations tested in parallel (one repo copy each)")
    parser.add_argument("--only", default="", help="run the mutations whose id or file contains this text")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTATIONS]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        print(f"duplicate mutation ids: {duplicates}", file=sys.stderr)
        return 1
    selected = [m for m in MUTATIONS if args.only in m.id or args.only in m.file]
    if args.list:
        for m in selected:
            print(f"{m.id:45} {m.file}: {m.description}")
        return 0
    if not selected:
        print(f"no mutation matches {args.only!r}", file=sys.stderr)
        return 1

    started = time.monotonic()
    jobs = max(1, min(args.jobs, len(selected)))
    with tempfile.TemporaryDirectory(prefix="ccp-mutate-") as tmp:
        roots = [copy_repo(Path(tmp) / f"w{i}") for i in range(jobs)]
        # Baseline: the unmutated tests pass, else a "killed" verdict would mean nothing.
        paths = sorted({p for m in selected for p in m.tests if (REPO / p.split("::", 1)[0]).exists()})
        baseline = run_tests(roots[0], paths, args.timeout * 4)
        if baseline.returncode != 0:
            print("the unmutated tests fail; fix them before checking mutations:", file=sys.stderr)
            print((baseline.stdout + baseline.stderr)[-3000:], file=sys.stderr)
            return 2
        print(f"baseline: {len(paths)} test paths pass ({time.monotonic() - started:.0f}s); "
              f"{len(selected)} mutations, {jobs} at a time", flush=True)

        queue = list(enumerate(selected))
        results: list[Result | None] = [None] * len(selected)

        def worker(root: Path) -> None:
            while queue:
                try:
                    index, mutation = queue.pop(0)
                except IndexError:
                    return
                result = apply_and_test(root, mutation, args.timeout)
                results[index] = result
                mark = {"killed": "killed  ", "survived": "SURVIVED", "stale": "STALE   "}.get(result.verdict, result.verdict)
                print(f"[{mark}] {mutation.id:45} {result.seconds:5.1f}s  {result.detail[:110]}", flush=True)

        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(worker, root) for root in roots]:
                    future.result()
        except KeyboardInterrupt:
            queue.clear()
            print("interrupted: the checkout was never modified; the temp copies are removed", file=sys.stderr)
            raise

    done = [r for r in results if r is not None]
    survived = [r for r in done if r.verdict == "survived"]
    stale = [r for r in done if r.verdict == "stale"]
    killed = [r for r in done if r.verdict == "killed"]
    print(f"\n{len(done)} mutations: {len(killed)} killed, {len(survived)} survived, {len(stale)} stale "
          f"in {time.monotonic() - started:.0f}s")
    for r in survived:
        print(f"  SURVIVED {r.mutation.id}: {r.mutation.description} ({r.mutation.file}; tests {' '.join(r.mutation.tests)})")
    for r in stale:
        print(f"  STALE    {r.mutation.id}: {r.detail}")
    return 1 if survived or stale else 0


if __name__ == "__main__":
    sys.exit(main())
