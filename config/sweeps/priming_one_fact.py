# The priming experiment with one fact per document: nothing to bind, the primed bias only has to carry
# one place. Compared with config/sweeps/priming_facts.py (one or two facts), it says how much of the gap is
# binding names to places. Same model and recipes.
#   python tools/prime.py config/sweeps/priming_one_fact.py

# the main experiment's evaluation, model and recipes (its data, name and variations are replaced below)
from config.sweeps.priming_facts import base, eval_docs, priming  # noqa: F401 (this config's values too)
from config.sweeps.priming_facts import data as _facts_data

name = "one_fact"
data = {**_facts_data, "n_facts": "1,1"}
variations = {}
