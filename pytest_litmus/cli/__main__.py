from __future__ import annotations

import sys

from pytest_litmus.cli import main

sys.exit(main())
