"""``python -m scripts.benchmarks NAME [--json]``: run one benchmark, print a table (or, with
--json, the figures as one JSON object on the last line)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from worker.logs import configure_logging

NAMES = ("images", "sandbox", "e2e", "scale")


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--json", action="store_true", help="last line: one JSON object")
    args = parser.parse_args()
    configure_logging("console", "warning")
    module = importlib.import_module(f"scripts.benchmarks.{args.name}")
    figures: dict[str, object] = module.run()
    for key, value in figures.items():
        if not isinstance(value, dict):
            print(f"{key:<36} {value}")
        else:
            for sub, item in value.items():
                print(f"{key + '.' + sub:<36} {item}")
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
