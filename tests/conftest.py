"""Shared pytest fixtures: repository paths and helpers to run the ``qat`` CLI in-process."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture
def repo_root():
    return REPO_ROOT


@pytest.fixture
def test_data():
    return TEST_DATA


@pytest.fixture
def run_qat(capsys):
    """Run ``qat <args>`` in-process; return (exit_code, stdout, stderr)."""
    from tao_qat.cli.main import main

    def run(*args):
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
