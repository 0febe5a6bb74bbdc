"""``python -m connectors.smsc_sim [options]``: just the ``smsc-sim`` command."""

from __future__ import annotations

import argparse
import sys

from .cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.smsc_sim")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["smsc-sim", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
