"""`make bench`: how much the offline review costs over just running the program under mocks.

For the dev stack and a generated 30-party collaboration, the same process times (median of 3,
after one warm-up of each so that imports are not counted):
- `program`: the program under the recording mocks in its own environment, no policies (the subprocess
  `policies.review.sandbox.record` that the review itself runs);
- `review`: the whole review (`policies.review.run_review`: program, every policy pack, key-release
  simulation, report rendering; no files written),
and prints each as seconds and as a ratio to `program`.
"""

from __future__ import annotations

import statistics
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
