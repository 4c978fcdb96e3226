# Canonical induction heads on random tokens: the three models of config/sweeps/induction_synthetic.py on dense
# copies from at most 48 tokens back, in long documents whose windows start anywhere (no positional
# shortcut), with layer 0 of the 2-layer models attending to its last 8 tokens (layer_windows), which
# makes every seed form them within 1M tokens. 3 seeds; docs/induction.md has the results.
#   python tools/induction.py config/sweeps/induction_synthetic_dense.py

# the first synthetic setting's seeds and shared keys (its data, budget and runs are replaced below)
from config.sweeps.induction_synthetic import common, seeds  # noqa: F401 (this config's values too)
name = "synthetic_dense"
# ~74% of targets inside a copy (8-24 tokens long, 8-48 tokens after its source), 257-token documents
prepare = ("prepare/induction.py --doc_len=257 --max_distance=48 --repeat_prob=0.3 --min_len=8 --max_len=24 "
           "--out data/induction_dense")
common = dict(common, dataset="induction_dense", max_iters=1500, lr_decay_iters=1500,
              eval_interval=25, log_interval=250)
runs = {
    "attn_only_2l": dict(n_layer=2, attn_only=True, layer_windows=(8, 64)),
    "attn_only_1l": dict(n_layer=1, attn_only=True),
    "full_2l": dict(n_layer=2, layer_windows=(8, 64)),
}
