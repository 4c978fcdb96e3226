# The priming experiment with one fact per document: nothing to bind, the primed bias only has to carry
# one place. Compared with config/priming_facts.py (one or two facts), it says how much of the gap is
# binding names to places. Same model and recipes.
#   python tools/prime.py config/priming_one_fact.py

import os as _os
import runpy as _runpy

_facts = _runpy.run_path(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "priming_facts.py"))
name = "one_fact"
data = {**_facts["data"], "n_facts": "1,1"}
eval_docs = _facts["eval_docs"]
base = _facts["base"]
priming = _facts["priming"]
variations = {}
