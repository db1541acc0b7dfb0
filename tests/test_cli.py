"""Tests of the `wit` entry point: each command loads only the module that registers it."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

import pytest

from wit_builder.cli import COMMAND_MODULES, STAGE_CLI_MODULES, build_parser, main


def registered_commands(module_name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(module_name).add_parser(subparsers)
    return set(subparsers.choices)


def test_command_modules_cover_every_command():
    expected = {command: module for module in STAGE_CLI_MODULES for command in registered_commands(module)}

    assert COMMAND_MODULES == expected


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_one_command_parser_parses_its_help(command, capsys):
    parser = build_parser(command)

    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([command, "--help"])

    assert exit_info.value.code == 0
    assert f"wit {command}" in capsys.readouterr().out


def test_option_before_command(tmp_path, capsys):
    assert main(["-q", "queries", "stats", str(tmp_path)]) == 2


def test_no_progress_bars_without_terminal(tmp_path):
    """A command whose stage draws a bar in the parent process writes none when stderr is a pipe."""
    from wit_builder.parquet import write_records
    from wit_builder.records import MatchedCandidate

    write_records(tmp_path / "in" / "part-00000.parquet", [], MatchedCandidate)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("TQDM_")}
    command = [sys.executable, "-m", "wit_builder.cli", "fetch", str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert "img/s" not in completed.stderr
    assert "fetch: 0 of 0 rows ok" in completed.stderr
