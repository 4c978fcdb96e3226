# Reader against memorizer on a world too large to memorize, with the recipe that binds
# (docs/knowledge.md#a-recipe-that-binds-echo-and-kv_shift): the world of config/sweeps/knowledge_sizes_1000.py
# (1,000 people) written with --echo, the 4x64 and 4x128 sizes with kv_shift, one seed, the same 3,500 steps.
#   python tools/knowledge.py config/sweeps/knowledge_sizes_echo_1000.py

from config.sweeps.knowledge_sizes_1000 import data as _data
from config.sweeps.knowledge_sizes_1000 import forgetting, lora, priming, retrieval_k, seeds, sizes  # noqa: F401 (this config's values too)
from config.sweeps.knowledge_sizes_echo import base  # noqa: F401

name = "world_echo_1000"
data = {**_data, "echo": "True"}
