"""Put the repository root on sys.path, once, for a script run as `python tools/<script>.py`.

Python puts the script's own folder (tools/) on sys.path, not the repository, so `import model` or
`from helpers.data import ...` would fail. Each script imports this module first, only when it runs as
a script; imported as `tools.<script>` (tests, other tools) the root is already there. This keeps every
command in the docs as written (`python tools/x.py`, not `python -m tools.x`); prepare/_root.py does
the same for prepare/.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
