"""The real-anatomy cross-contrast pair with known geometry (data_scripts/make_pair_data.py),
importable from tests; the session fixture ``brain_case`` lives in tests/conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data_scripts"))
from make_pair_data import BrainCase, make_brain_case  # noqa: E402

__all__ = ["BrainCase", "make_brain_case"]
