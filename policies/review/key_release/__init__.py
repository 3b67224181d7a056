"""Key-release simulation: each party key's generated policy judged as AWS, Azure or GCP would.

`simulate(recording, settings)` gives one row per (party key, case); `markdown_table(rows)` renders
them for the review report. The evaluators are in `aws`, `azure` and `gcp`; the attested claim sets
in `claims`.
"""

from policies.review.key_release.simulate import markdown_table, mismatches, simulate

__all__ = ["markdown_table", "mismatches", "simulate"]
