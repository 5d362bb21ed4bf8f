"""The ``brain_case`` fixture: a real-anatomy cross-contrast pair with known geometry (see
data_scripts/make_pair_data.py). Import the fixture into a test module or conftest to use it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
from make_pair_data import BrainCase, make_brain_case  # noqa: E402


@pytest.fixture(scope="session")
def brain_case(tmp_path_factory) -> BrainCase:
    return make_brain_case(tmp_path_factory.mktemp("brain_case"))
