"""`make bench`: how much the offline review costs over just running the program under mocks.

For the dev stack and a generated 30-party collaboration, the same process times (median of 3,
after one warm-up of each so that imports are not counted):
- `program`: the program under the recording mocks in its own environment, no policies (the subprocess
  `policies.review.sandbox.record` that the review itself runs);
- `review`: the whole review (`policies.review.run_review`: program, every policy pack, key-release
  simulation, report rendering; no files written),
and prints each as seconds and as a ratio to `program`.

Then what the sandbox itself adds (the issue's budget: at most 1 s on the dev stack with a warm
environment cache): a `make review`-like run in a fresh interpreter, timed around `run_review`, once as
shipped (the program in its own subprocess) and once with the program run in the review's own process
(the pre-sandbox way, kept here only as the baseline). Both pay the providers' imports once, so the
difference is the child interpreter, its second import of the Pulumi SDK and the JSON round trip.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from benchmarks.generate import ROOT, write_project
from policies.review import project
from policies.review import sandbox

RUNS = 3


def _median_seconds(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up: module imports and SDK schema loading happen once per process
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(directory: Path, stack: str) -> dict[str, float]:
    from policies.review import run_review

    proj = project.load(directory, stack)

    def program() -> sandbox.Run:
        return sandbox.record(proj, sandbox.DEFAULT_TIMEOUT, paths=(ROOT,))

    def review() -> object:
        result = run_review(directory, stack, None)
        if result.exit_code != 0:
            raise SystemExit(f"review of {stack} did not pass: {result.problems or 'violations'}")
        return result

    first = program()
    if first.recording is None:
        raise SystemExit(f"the program of {stack} did not run: {first.problems}")
    resources = len(first.recording.resources)
    return {"resources": resources, "program": _median_seconds(program), "review": _median_seconds(review)}


# Runs in a fresh interpreter: `run_review` of the dev stack, with the program in a subprocess
# ("sandbox") or in this process ("in-process"); prints the seconds it took.
_FRESH = """
import sys, time
from pathlib import Path
from policies.review import mocks, run, sandbox

def in_process(proj, timeout, env=None, paths=()):
    sys.path.extend(str(p) for p in paths)
    recording = mocks.run_directory(proj.main, project=proj.name, stack=proj.stack, config=proj.config,
                                    secret_keys=proj.secret_keys, preview=True)
    return sandbox.Run(recording, [], "ok", sandbox.Environment(Path(sys.executable), "in-process"))

if sys.argv[1] == "in-process":
    run.sandbox.record = in_process
started = time.perf_counter()
result = run.run_review(run.REPO_ROOT, "dev", None)
assert result.exit_code == 0, result.problems
print(time.perf_counter() - started)
"""


def sandbox_overhead(runs: int = RUNS) -> dict[str, float]:
    """Median seconds of `run_review` in fresh interpreters, per mode (after one warm-up of each)."""
    def fresh(mode: str) -> float:
        done = subprocess.run([sys.executable, "-c", _FRESH, mode], cwd=ROOT, capture_output=True, text=True,
                              check=True)
        return float(done.stdout.strip().splitlines()[-1])

    modes = ("in-process", "sandbox")
    for mode in modes:
        fresh(mode)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(runs):  # interleaved, so load on the machine hits both alike
        for mode in modes:
            samples[mode].append(fresh(mode))
    return {mode: statistics.median(values) for mode, values in samples.items()}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="ccp-bench-") as tmp:
        targets = [("dev", ROOT, "dev"), ("30-party", write_project(Path(tmp)), "bench30")]
        print(f"{'target':<10} {'resources':>9} {'program (s)':>12} {'review (s)':>11} {'ratio':>7}")
        for label, directory, stack in targets:
            m = measure(directory, stack)
            print(
                f"{label:<10} {int(m['resources']):>9} {m['program']:>12.2f} {m['review']:>11.2f} "
                f"{m['review'] / m['program']:>6.2f}x"
            )
    print(f"(median of {RUNS} runs each, after one warm-up run; both run the program in a subprocess)")
    fresh = sandbox_overhead()
    added = fresh["sandbox"] - fresh["in-process"]
    print(f"dev review in a fresh interpreter: program in-process {fresh['in-process']:.2f} s, in its own "
          f"subprocess {fresh['sandbox']:.2f} s ({fresh['sandbox'] / fresh['in-process']:.2f}x): the sandbox "
          f"adds {added:+.2f} s (budget: at most 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
