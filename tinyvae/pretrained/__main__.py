"""``python -m tinyvae.pretrained NAME``: rebuild a bundled model from its recipe."""

import sys

from . import main

sys.exit(main())
