"""Print the mutation score from mutmut's CI/CD stats and fail under the target.

    .venv/bin/python ops/mutation_score.py mutants/mutmut-cicd-stats.json [--target 85]

Score = killed / (killed + survived + no_tests + timeout + suspicious): a mutant no test
runs counts against the score, as it should.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("stats", type=Path)
    parser.add_argument("--target", type=float, default=85.0)
    args = parser.parse_args()
    stats = json.loads(args.stats.read_text())
    counted = ("killed", "survived", "no_tests", "timeout", "suspicious")
    total = sum(stats[key] for key in counted)
    score = 100.0 * stats["killed"] / total if total else 0.0
    print("mutation: " + ", ".join(f"{key} {stats[key]}" for key in counted))
    print(f"mutation score: {score:.1f} % (target {args.target:g} %)")
    return 0 if score >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
