import argparse
import importlib
import os
import subprocess
import sys

import pytest

from tinlib import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "tinlib", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "usage: tinlib" in proc.stdout


def _parsers(parser: argparse.ArgumentParser, name: str):
    """``(name, parser)`` for ``parser`` and each of its sub-commands."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_option_of_every_command_says_what_it_does(command):
    module = importlib.import_module(cli.COMMANDS[command][0])
    undocumented = []
    for name, parser in _parsers(module.build_parser(), f"tinlib {command}"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or not action.option_strings:
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                undocumented.append(f"{name} {'/'.join(action.option_strings)}")
    assert undocumented == []


def test_debug_is_accepted_after_a_prepare_sub_command(tmp_path, capsys):
    from tinlib.commands import prepare

    missing = tmp_path / "nowhere"
    assert prepare.main(["sthv1", "--root", str(missing), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "unrecognized arguments" not in err
    assert "Traceback" in err  # --debug shows it
    assert err.splitlines()[-1].startswith("tinlib prepare: error: missing SthV1 class list: ")
    assert prepare.main(["sthv1", "--root", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_zoo_refuses_a_results_folder_that_does_not_exist(tmp_path, capsys):
    from tinlib.commands import zoo

    assert zoo.main(["--results-dir", str(tmp_path / "typo")]) == 2
    assert capsys.readouterr().err.strip() == (f"tinlib zoo: error: results folder {tmp_path / 'typo'} does not "
                                                "exist; give the folder the runs wrote to with --results-dir "
                                                "(default results)")
    assert not (tmp_path / "typo").exists()


def test_latency_names_a_bad_arch_as_an_option_error(capsys):
    from tinlib.commands import latency

    assert latency.main(["--archs", "tin_r50,tim_r50"]) == 2
    assert capsys.readouterr().err.strip() == ("tinlib latency: error: --archs: unknown arch 'tim_r50': use "
                                                "tin_/tsm_/tsn_ followed by one of r18, r34, r50, r101 (e.g. tin_r50)")


def test_latency_compares_the_three_models_at_the_configs_depth(monkeypatch):
    """Without --archs the demo config (a ResNet-18) is timed as TIN, TSM and TSN ResNet-18s."""
    from tinlib.commands import latency
    from tinlib.engine import latency as engine_latency

    asked = []

    def stop(cfg, archs, **kwargs):
        asked.append(archs)
        raise SystemExit(0)

    monkeypatch.setattr(engine_latency, "benchmark", stop)
    for argv, expected in ((["demo_tin_r18_synthetic"], ["tin_r18", "tsm_r18", "tsn_r18"]),
                           ([], ["tin_r50", "tsm_r50", "tsn_r50"]),
                           (["demo_tin_r18_synthetic", "--archs", "tsn_r34"], ["tsn_r34"])):
        with pytest.raises(SystemExit):
            latency.main([*argv, "--devices", "cpu"])
        assert asked.pop() == expected


def test_a_closed_stdout_pipe_ends_the_command_without_a_traceback(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line (`tinlib ... | head -0`)
    try:
        proc = subprocess.run([sys.executable, "-m", "tinlib", "prepare", "synthetic", "--out", str(tmp_path / "s"),
                               "--size", "tiny", "--quiet"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == cli.BROKEN_PIPE_STATUS == 141
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


def test_prepare_synthetic_says_when_it_reused_the_data(tmp_path, capsys):
    from tinlib.commands import prepare

    args = ["synthetic", "--out", str(tmp_path / "s"), "--size", "tiny", "--quiet"]
    assert prepare.main(args) == 0
    assert "), written in " in capsys.readouterr().out.splitlines()[0]
    assert prepare.main(args) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("), already there with these options: reused")
