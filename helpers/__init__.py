"""What train.py, sample.py and the tools share, one module a topic:

    config      the command-line parser (configure) and the training keys (TrainConfig)
    data        token bins on disk and the (x, y) windows cut from them; prompt text to token ids
    checkpoint  the run folder: checkpoints, config.json, metrics.jsonl, written atomically
    optim       AdamW or Muon + AdamW, the tangent projection, the stop for a diverging run
    extras      what an experiment adds to train.py (metrics, batches, loss, a stop), through named hooks
    evaluate    loss per split and at every position of the context
    plotting    the figures drawn from metrics.jsonl
    device      device, precision, DDP processes
    launch      train.py runs started as processes, and reused when finished (the sweep tools)
    tracking    each metrics row also sent to TensorBoard, wandb or trackio (log_to)
    induction   induction heads: each head's scores on repeated random tokens, the in-context-learning score
    circuits    direct logit attribution, activation and path patching, through model.py's hook points
    knowledge   the fixed world's closed- and open-book metrics, and the forgetting loss
    multiplier  compute multipliers: a variant's loss read on the baseline's loss-vs-budget curve
"""
