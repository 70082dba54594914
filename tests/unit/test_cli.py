"""`streamrank` as a new user meets it: help that shows defaults and units and says where
settings are documented, --version, one-line errors, and commands that load only what they
need."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scoring.kinds import LEARNED_KINDS, TRAINABLE_KINDS, kind_names
from streams.cli import COMMANDS, build_parser, main
from streams.settings import CONFIG_FILE_VAR

ROOT = Path(__file__).resolve().parents[2]
# What no command may load just to build its parser (they are loaded where a command runs).
HEAVY = ["torch", "transformers", "faust", "mode", "aiokafka", "rocksdict"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # `--config` reaches the settings through this variable: set (and restored) here.
    monkeypatch.setenv(CONFIG_FILE_VAR, "")
    for name in list(os.environ):
        if name.upper().startswith("STREAMRANK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "400")  # help on one line per option: easy to search
    monkeypatch.chdir(tmp_path)


def parsers(parser: argparse.ArgumentParser, path: str = "streamrank"
            ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub-)command's parser, by its command line."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


def commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """The parsers a user runs: leaves of the command tree."""
    return [(path, p) for path, p in parsers(build_parser())
            if not any(isinstance(a, argparse._SubParsersAction) for a in p._actions)]


def test_every_command_is_in_the_table_and_the_tree() -> None:
    top = {path.split()[1] for path, _ in commands()}
    assert top == set(COMMANDS)
    assert len(commands()) >= len(COMMANDS) + 3  # model export|list|rollback, bench x2


def test_every_option_is_explained_and_shows_its_default() -> None:
    for path, parser in commands():
        text = parser.format_help()
        assert parser.description, f"{path}: says what it does"
        assert "docs/configuration.md" in text, f"{path}: names where settings are documented"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help or action.choices, f"{path} {name}: no help"
            if action.default in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            if isinstance(action.default, bool):
                continue  # a flag: off unless given
            shown = parser._get_formatter()._expand_help(action)
            assert f"default: {action.default}" in shown, f"{path} {name}: {shown}"


def test_no_default_points_into_a_development_checkout() -> None:
    for path, parser in commands():
        for action in parser._actions:
            if isinstance(action.default, str | Path):
                assert ".." not in str(action.default), f"{path} {action.dest}"
                assert "shared/data" not in str(action.default), f"{path} {action.dest}"


@pytest.mark.parametrize("argv", [["bench", "pipeline"], ["eval", "movielens"]])
def test_data_files_are_required_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    assert done.value.code == 2
    assert "required" in capsys.readouterr().err


def test_durations_are_written_one_way(tmp_path: Path) -> None:
    parse = build_parser().parse_args
    args = parse(["bench", "scorer", "--budget", "2s", "--load", "1m", "--slo", "80ms"])
    assert (args.budget_s, args.load_s, args.slo_s) == (2.0, 60.0, pytest.approx(0.08))
    defaults = parse(["bench", "scorer"])
    assert (defaults.budget_s, defaults.load_s, defaults.slo_s) == (4.0, 6.0, 0.05)
    assert parse(["tail", "--lookback", "1h", "--idle-exit", "30s"]).lookback_s == 3600
    assert parse(["tail"]).lookback_s == 600 and parse(["tail"]).idle_exit_s is None
    assert parse(["train", "--every", "6h"]).every == 21600
    assert parse(["simulate", "--settle", "0s", "--wait-samples", "3m"]).wait_samples == 180
    for path, parser in commands():
        for action in parser._actions:
            assert not action.dest.endswith(("_seconds",)), f"{path}: {action.dest}"
            assert not any(o.endswith(("-s", "-seconds", "-ms")) for o in action.option_strings)


def test_a_bad_duration_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["tail", "--lookback", "soon"])
    assert "not a duration: 'soon'" in capsys.readouterr().err


def test_kind_choices_come_from_the_model_kinds() -> None:
    parse = build_parser().parse_args
    by_path = dict(commands())
    kind = next(a for a in by_path["streamrank model export"]._actions if a.dest == "kind")
    assert list(kind.choices or []) == kind_names()
    train_kind = next(a for a in by_path["streamrank train"]._actions if a.dest == "kind")
    assert list(train_kind.choices or []) == kind_names(TRAINABLE_KINDS)
    assert parse(["bench", "scorer"]).kinds == kind_names(LEARNED_KINDS)
    with pytest.raises(SystemExit):
        parse(["bench", "scorer", "--kinds", "embed,bm25"])


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    installed = importlib.metadata.version("streamrank")
    assert capsys.readouterr().out.strip() == f"streamrank {installed}"


def test_a_bad_setting_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("STREAMRANK_PARTITIONS", "abc")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "STREAMRANK_PARTITIONS='abc'" in err, err


def test_config_given_before_or_after_the_command(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("partitions = 0\n")
    for argv in (["--config", str(bad), "topics"], ["topics", "--config", str(bad)]):
        os.environ.pop(CONFIG_FILE_VAR, None)
        assert main(argv) == 2
        assert f"{bad}: partitions = 0" in capsys.readouterr().err


def test_model_list_on_an_empty_registry_says_how_to_export(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMRANK_MODELS_DIR", str(tmp_path / "models"))
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "no models in" in out and "streamrank model export" in out


def test_model_rollback_needs_a_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["model", "rollback"])
    assert "version" in capsys.readouterr().err


PROBE = """
import json, sys
from streams.cli import build_parser
build_parser()
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def loaded_by_building_the_parser(heavy: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(heavy=heavy)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    loaded: list[str] = json.loads(done.stdout)
    return loaded


def test_building_the_parser_loads_no_kafka_faust_or_torch() -> None:
    assert loaded_by_building_the_parser(HEAVY) == []


def test_building_the_parser_loads_no_onnxruntime() -> None:
    assert loaded_by_building_the_parser(["onnxruntime"]) == []


def test_the_probe_sees_a_loaded_module() -> None:
    """The check above can fail: a module that is loaded is reported."""
    assert loaded_by_building_the_parser(["argparse", "torch"]) == ["argparse"]


def test_python_dash_m_is_the_same_command() -> None:
    done = subprocess.run([sys.executable, "-m", "streams.cli", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("streamrank ")
