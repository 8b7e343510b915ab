"""A normal (not editable) install: the wheel carries the search spaces and the example studies, and a user
in a folder of their own runs `headsearch` with them, no repository in sight."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import sys
from pathlib import Path
import headsearch
from headsearch.searchspace import load_space
from headsearch.strategies import available
from headsearch.study_config import load_study

assert Path(headsearch.__file__).is_relative_to(sys.argv[1]), headsearch.__file__  # the wheel's copy, not the checkout
study = load_study("quickstart")
for run in study.strategies:
    load_space(available()[run.name].cls.search_space, run.space)
print("ok", len(study.strategies))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, unpacked as pip would install it (its dependencies are this venv's)."""
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("headsearch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"headsearch/searchspaces/{p.name}" for p in (ROOT / "searchspaces").glob("*.yaml")} <= set(names)
    assert "headsearch/studies/quickstart.yaml" in names
    site = out / "site"
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_wheel_finds_its_search_spaces_and_the_quickstart_from_any_folder(installed, tmp_path):
    result = subprocess.run([sys.executable, "-c", CHECK, str(installed)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(installed)}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_unknown_study_name_lists_the_packaged_ones(tmp_path):
    from headsearch.errors import HeadsearchError
    from headsearch.study_config import load_study

    with pytest.raises(HeadsearchError, match="quickstart"):
        load_study("no-such-study")
