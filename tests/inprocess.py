"""The command line run in this process (``headsearch.cli.main``): no interpreter start per command, so tests
of refused input stay quick. End-to-end tests that need a process of their own use subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from headsearch.cli import main


def cli(monkeypatch, capsys, cwd: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``headsearch ARGS`` run in ``cwd``."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", ["headsearch", *map(str, args)])
    capsys.readouterr()  # what the test printed before
    with pytest.raises(SystemExit) as ended:
        main()
    out = capsys.readouterr()
    return ended.value.code or 0, out.out, out.err
