# Reader against memorizer by size, on a world whose base binds (docs/knowledge.md#a-recipe-that-binds): the
# sizes of config/sweeps/knowledge_sizes.py (4 layers, widths 16 to 128), each with kv_shift, on the same
# 300-people world written with --echo (every fact "city of Voka Tusel Pelkor .", every question the words before
# its value). 3 seeds, each scored on closed_book, open_book_new, retrieval and open_book_other.
#   python tools/knowledge.py config/sweeps/knowledge_sizes_echo.py

from config.sweeps.knowledge import forgetting, lora, priming, retrieval_k, seeds  # noqa: F401 (this config's values too)
from config.sweeps.knowledge import base as _base
from config.sweeps.knowledge import data as _data
from config.sweeps.knowledge_sizes import sizes  # noqa: F401

name = "world_echo"
data = {**_data, "echo": "True"}
base = {**_base, "kv_shift": True}
