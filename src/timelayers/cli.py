"""The ``timelayers`` command. The only module of the library that prints."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _cmd_demo(args) -> int:
    from .seedcheck import replay_seed_check

    check = replay_seed_check()
    print("TimeAffine seed check (np.random.seed(1234), D=1, H=5, N=4, T=5)")
    print("out=", check.out)
    print()
    print("dx=", check.dx)
    print()
    for name, err in check.grad_errors.items():
        print(f"gradcheck {name:>2}: relative error {err:.2e}")
    print(f"grads kept their identity through backward: {check.identity_kept}")
    if not check.ok:
        raise CliError("the seed check failed")
    print("seed check: OK")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timelayers",
        description="Train and use sequence models built from hand-written NumPy layers.")
    parser.add_argument("--version", action="version", version=f"timelayers {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser("demo", help="replay the seed's TimeAffine check (and the main job)",
                          description="Replay the seed notebook's TimeAffine check.")
    demo.add_argument("--seed-check-only", action="store_true",
                      help="only replay the seed's TimeAffine check")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    np.set_printoptions(linewidth=75)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CliError, OSError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"timelayers {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"timelayers {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
