"""`reslab` command line: a thin layer that parses arguments and calls the library."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..version import __version__
from ..errors import ReslabError, choices_hint
from .arguments import Parser
from . import (analyze_cmd, eval_cmd, experiment_cmd, export_cmd, features_cmd, finetune_cmd, models_cmd, predict_cmd,
               train_cmd, weights_cmd)

COMMANDS = [train_cmd, finetune_cmd, eval_cmd, predict_cmd, features_cmd, export_cmd, models_cmd, weights_cmd,
            experiment_cmd, analyze_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="reslab", description="Residual networks: model zoo, training, analysis.")
    parser.add_argument("--version", action="version", version=f"reslab {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        flags = [o for a in _subparser(parser, args.command)._actions for o in a.option_strings]
        flag = unknown[0].split("=")[0]
        print(f"reslab {args.command}: error: unknown option {flag}; {choices_hint(flag, flags, limit=5)} "
              f"(reslab {args.command} --help lists them)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except ReslabError as e:
        from ..training.trainer import Interrupted
        if isinstance(e, Interrupted):
            print(f"reslab: {e}", file=sys.stderr)
            return 130
        print(f"reslab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reslab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    return parser


if __name__ == "__main__":
    sys.exit(main())
