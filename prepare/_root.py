"""Put the repository root on sys.path for a script run as `python prepare/<script>.py`, so that it
imports `prepare.common` as the tests and tools do: tools/_root.py explains why, for tools/."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
