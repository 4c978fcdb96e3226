# Knowledge out of the model (design note 004): a small GPT memorizes a fixed world of 300 people, then the
# facts are supplied from outside (context, BM25 retrieval, priming bias layers, a LoRA adapter) or pushed
# out of the weights (forget_weight); 3 seeds, every arm on the same val questions.
#   python tools/knowledge.py config/sweeps/knowledge.py
# Selective forgetting (a forget set and a retain set of people; docs/knowledge.md#selective-forgetting):
#   python tools/knowledge.py config/sweeps/knowledge.py --forget_fractions="(0.1, 0.5, 0.9)" --selective_arms="{'forget_retain': {'retain_weight': 1.0}, 'neglect_retain': {'forget_weight': 0.0, 'retain_weight': 1.0}}"
# Does forgetting free capacity? (new people learned after forget_retain and after continued; docs/knowledge.md#capacity):
#   python tools/knowledge.py config/sweeps/knowledge.py --forget_fractions="(0.5,)" --selective_arms="{'forget_retain': {'retain_weight': 1.0}}" --new_people=100 --capacity="{'eval_interval': 10, 'eval_iters': 5, 'log_interval': 50}"
# Finished runs in out-knowledge/world/ are reused; the results go there too (docs/knowledge.md).

name = "world"
data = dict(people=300, held_out=100, group_size=100, train_docs=40000, val_docs=1000, eval_questions=200,
            mix="0.45,0.4,0.15", seed=0)
seeds = (0, 1, 2)
retrieval_k = 2
base = dict(  # train.py keys of the base model: 4 layers, 64 wide, on the world
    block_size=80, n_layer=4, n_head=4, n_embd=64, dropout=0.0, bias=False, batch_size=32,
    learning_rate=3e-3, min_lr=3e-4, warmup_iters=50, max_iters=3500, lr_decay_iters=3500, weight_decay=0.0,
    eval_interval=250, eval_iters=10, log_interval=250,
)
forgetting = dict(  # train.py keys of the forgetting fine-tune, from the base
    forget_weight=1.0, forget_batch_size=64, batch_size=32, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20,
    max_iters=300, lr_decay_iters=300, weight_decay=0.0, eval_interval=50, eval_iters=10, log_interval=50,
)
priming = dict(  # train.py keys of the bias layers on the frozen base
    priming_dim=128, priming_pool="mean", batch_size=32, learning_rate=1e-2, min_lr=1e-3, warmup_iters=50,
    max_iters=600, lr_decay_iters=600, weight_decay=0.0, eval_interval=300, eval_iters=10, log_interval=200,
)
lora = dict(  # train.py keys of the LoRA adapters on the base, trained on the store's facts lines
    lora_rank=8, lora_alpha=16.0, batch_size=32, learning_rate=3e-3, min_lr=3e-4, warmup_iters=20,
    max_iters=300, lr_decay_iters=300, weight_decay=0.0, eval_interval=100, eval_iters=5, log_interval=100,
)
