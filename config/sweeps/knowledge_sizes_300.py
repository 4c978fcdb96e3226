# Reader against memorizer, by model size, on the 300-people world of config/sweeps/knowledge.py: the sizes of
# config/sweeps/knowledge_sizes.py (its 4x64 is that world's base, reused); docs/knowledge.md#reader-vs-memorizer-by-size.
#   python tools/knowledge.py config/sweeps/knowledge_sizes_300.py

from config.sweeps.knowledge import data, name  # noqa: F401 (this config's values too)
from config.sweeps.knowledge_sizes import base, forgetting, lora, priming, retrieval_k, seeds, sizes  # noqa: F401
