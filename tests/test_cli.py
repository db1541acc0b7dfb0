"""Tests of the `wit` entry point: each command loads only the module that registers it."""

from __future__ import annotations

import argparse
import importlib

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
