"""``python -m screenalytics_assets.cli`` = the ``screenalytics`` command."""

import sys

from . import console_main

sys.exit(console_main())
