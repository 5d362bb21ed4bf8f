"""``python -m volgan`` (also under ``torchrun -m volgan``): the volgan command line."""

import sys

from volgan.cli import main

sys.exit(main())
