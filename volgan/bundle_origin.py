"""Where a bundle comes from: a bundle's configs are code, so one from elsewhere gets a warning.

A MONAI bundle's ``configs/*.yaml`` instantiate any importable class (``_target_``) and evaluate
Python expressions (``$...``) when they are parsed, with the permissions of whoever runs
``volgan infer`` or ``volgan label serve``. The bundles in this installation's ``bundles/``
folder are the project's own; any other folder (after resolving links) is reported once per
process, naming the folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import volgan

logger = logging.getLogger(__name__)

_reported: set[Path] = set()


def installed_bundles() -> Path:
    """The ``bundles/`` folder of this installation (beside the ``volgan`` package), resolved."""
    return Path(volgan.__file__).resolve().parents[1] / "bundles"


def is_installed(bundle: str | os.PathLike) -> bool:
    """Whether ``bundle`` resolves (links followed) to a folder inside :func:`installed_bundles`."""
    return Path(bundle).resolve().is_relative_to(installed_bundles())


def warn_if_external(bundle: str | os.PathLike) -> bool:
    """Log one warning naming ``bundle`` if it lies outside :func:`installed_bundles`.

    Returns:
        Whether a warning was logged (``False`` for installed bundles and for a folder already
        reported in this process).
    """
    resolved = Path(bundle).resolve()
    if is_installed(resolved) or resolved in _reported:
        return False
    _reported.add(resolved)
    logger.warning("bundle %s is not one of the installed bundles (%s): its configs run code with your "
                   "permissions; use bundles you trust", resolved, installed_bundles())
    return True
