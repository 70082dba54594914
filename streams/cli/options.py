"""What every `streamrank` command's parser shares: the help layout (defaults and units shown,
where settings are documented), `--config`, and argument types for durations and lists.

Only the standard library at import: every command module builds its parser from this.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from streams.durations import parse_duration, parse_time

CONFIG_DOCS = "docs/configuration.md"
SETTINGS_EPILOG = f"""\
Settings (Kafka, topics, models, the worker) come from STREAMRANK_* environment variables,
a TOML file (--config) and a secrets directory (STREAMRANK_SECRETS_DIR); environment
variables win. Every setting, its default and its unit: {CONFIG_DOCS}.
Durations are written 500ms, 30s, 10m, 6h, 2d."""
CONFIG_HELP = (
    "TOML file of settings (default: $STREAMRANK_CONFIG_FILE, else ./streamrank.toml if present);"
    " environment variables override it"
)


class HelpFormat(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; every option with a default says it; values are
    shown as N, NUMBER or PATH rather than the option's name in capitals."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is None
            or default is False  # a flag's "off" (0, which equals False, is a real default)
            or default is argparse.SUPPRESS
            or isinstance(action, argparse._StoreTrueAction | argparse._VersionAction)
        ):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        if action.type is int:
            return "N"
        if action.type is float:
            return "NUMBER"
        if action.type is Path:
            return "PATH"
        return super()._get_default_metavar_for_optional(action)


class CommandParser(argparse.ArgumentParser):
    """The parser of each command (argparse builds sub-commands' parsers with this class): the
    shared help layout and epilog, and `--config` accepted after the command too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormat)
        kwargs.setdefault("epilog", SETTINGS_EPILOG)
        super().__init__(*args, **kwargs)
        # SUPPRESS: a sub-parser's default would overwrite a `--config` given before the command.
        self.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                          help=CONFIG_HELP)


def duration(text: str) -> float:
    """argparse type: seconds from "500ms", "30s", "10m", "6h" (a bare number is seconds)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_or_zero(text: str) -> float:
    """argparse type: like `duration`, and "0s" means none."""
    try:
        return parse_duration(text, allow_zero=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_text(text: str) -> str:
    """argparse type: a time as `streams.durations.parse_time` reads it, checked now, kept as
    text (a duration ago is counted from when it is used)."""
    try:
        parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def names(choices: Sequence[str], *, allow_empty: bool = False) -> Callable[[str], list[str]]:
    """argparse type: a comma-separated list, each one of `choices`."""

    def parse(text: str) -> list[str]:
        picked = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [p for p in picked if p not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)} (choose from {', '.join(choices)})")
        if not picked and not allow_empty:
            raise argparse.ArgumentTypeError(f"name at least one of {', '.join(choices)}")
        return picked

    return parse


def existing_path(text: str) -> Path:
    """argparse type: a file or folder that exists (checked before anything starts)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def positive_ints(text: str) -> list[int]:
    """argparse type: a comma-separated list of positive integers ("1,8,32")."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {text!r}")
    return values


__all__ = ["CONFIG_DOCS", "CONFIG_HELP", "SETTINGS_EPILOG", "CommandParser", "HelpFormat",
           "duration", "duration_or_zero", "existing_path", "names", "positive_ints", "time_text"]
