# Reader against memorizer, by model size, on a world of 1,000 people (docs/knowledge.md#reader-vs-memorizer-by-size):
# the 4x64 and 4x128 sizes of config/sweeps/knowledge_sizes.py, one seed, the same 3,500 steps.
#   python tools/knowledge.py config/sweeps/knowledge_sizes_1000.py

from config.sweeps.knowledge_sizes import base, data, forgetting, lora, priming, retrieval_k  # noqa: F401 (this config's values too)
from config.sweeps.knowledge_sizes import sizes as _every_size

name = "world_1000"
data = {**data, "people": 1000, "name_parts": 60}  # 3,600 names: 1,100 people, the rest fresh names for open-book documents
seeds = (0,)
sizes = {label: _every_size[label] for label in ("4x128", "4x64")}
