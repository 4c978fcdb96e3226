# Reader against memorizer, by model size (docs/knowledge.md#reader-vs-memorizer-by-size): the base at 4 layers and
# widths 16 to 128 (one attention head per 16 dims), the same 3,500 steps each, on the 300-people world of
# config/sweeps/knowledge.py (its 4x64 is that world's base, reused); 3 seeds, each scored on closed_book,
# open_book_new and retrieval.
#   python tools/knowledge.py config/sweeps/knowledge_sizes.py
# A world of 1,000 people (docs/knowledge.md#reader-vs-memorizer-by-size, one seed):
#   python tools/knowledge.py config/sweeps/knowledge_sizes_1000.py

from config.sweeps.knowledge import base, data, forgetting, lora, name, priming, retrieval_k, seeds  # noqa: F401 (this config's values too)

sizes = {f"4x{d}": dict(n_layer=4, n_embd=d, n_head=d // 16) for d in (16, 32, 64, 128)}
