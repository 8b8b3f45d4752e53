"""``python -m scripts.benchmarks NAME [--quick] [--json]``: run one benchmark, print a table
(or, with --json, the figures as one JSON object on the last line).

``--quick`` runs the same code with tiny counts and leaves shared state alone (the images
benchmark does not prune the build cache): the figures come out under the same keys, plus
``"quick": true``, but they measure nothing. The tests run every benchmark this way, so a
broken entry point fails the build rather than the next measurement."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from worker.logs import configure_logging

NAMES = ("images", "sandbox", "e2e", "scale", "soak")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("name", choices=NAMES)
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts, shared state untouched: a smoke test"
    )
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args()
    configure_logging("console", "warning")
    module = importlib.import_module(f"scripts.benchmarks.{args.name}")
    figures: dict[str, object] = module.run(quick=args.quick)
    if args.quick:
        figures["quick"] = True
    for key, value in figures.items():
        if not isinstance(value, dict):
            print(f"{key:<36} {value}")
        else:
            for sub, item in value.items():
                print(f"{key + '.' + sub:<36} {item}")
    if args.quick:
        print("(quick mode: tiny counts, these figures measure nothing)")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
