"""
Experiment extras: what one experiment adds to train.py, through a few named hooks.

train.py is the same story for every run: config -> data -> model -> optimizer -> loop -> plots. An
experiment that needs more (its own batches, a loss of its own, metrics at each eval, a rule to stop)
subclasses Extra, overrides the hooks it needs and lives in its experiment's module; make_extras
builds a run's extras from its config and dataset. docs/training.md#experiment-extras: how to add one.
"""


class Extra:
    """One experiment's hooks into train.py; each does nothing unless overridden."""

    def check(self, mcfg):
        """Refuse, in one line, a model the experiment cannot work with (mcfg: the model's GPTConfig)."""

    def batches(self, data_dir, meta, mcfg, cfg, device):
        """Batches (helpers/data.py) to use instead of train.py's, or None."""

    def train_batches(self, batches, generator):
        """(get_batch, sequences per micro-batch) for the step instead of random windows, or None."""

    def loss(self, model, generator):
        """A module to train on instead of the model's own loss, or None. Its forward(x, y, **kw)
        returns (None, loss) and its describe() says in a line what it trains on; train.py prints that."""

    def metrics(self, model):
        """Keys for each eval's metrics.jsonl row (model: the plain model, in train mode)."""
        return {}

    def summary(self, row):
        """Text for the printed eval line, e.g. ", closed_book 0.300"."""
        return ""

    def should_stop(self, row):
        """After each eval, on rank 0: True stops the run; it may add keys to the row."""
        return False

    def finish(self, iter_num):
        """At the end of a run that writes (rank 0)."""


class Extras:
    """A run's extras, called as one: metrics are merged, summaries joined, any stop stops."""

    def __init__(self, extras):
        self.extras = list(extras)
        # whether some extra can stop the run (DDP then tells every process rank 0's decision)
        self.can_stop = any(type(e).should_stop is not Extra.should_stop for e in self.extras)

    def first(self, hook, *args):
        """The first extra's answer that is not None."""
        return next((r for r in (getattr(e, hook)(*args) for e in self.extras) if r is not None), None)

    def check(self, mcfg):
        for e in self.extras:
            e.check(mcfg)

    def batches(self, data_dir, meta, mcfg, cfg, device):
        return self.first("batches", data_dir, meta, mcfg, cfg, device)

    def train_batches(self, batches, generator):
        return self.first("train_batches", batches, generator)

    def loss(self, model, generator):
        return self.first("loss", model, generator)

    def metrics(self, model):
        return {k: v for e in self.extras for k, v in e.metrics(model).items()}

    def summary(self, row):
        return "".join(e.summary(row) for e in self.extras)

    def should_stop(self, row):
        return any([e.should_stop(row) for e in self.extras])  # (a list: every extra sees the row)

    def finish(self, iter_num):
        for e in self.extras:
            e.finish(iter_num)


def make_extras(cfg, data_dir, meta, device):
    """The extras a run's config (and dataset) asks for; none for a plain run."""
    from helpers.data import FullBatch, Priming
    from helpers.evaluate import TargetRace
    from helpers.induction import HeadScores
    from helpers.knowledge import Knowledge

    extras = [Knowledge.of(data_dir, meta, device, cfg.forget_weight, cfg.forget_batch_size,  # a fixed world
                           cfg.forget_fraction, cfg.retain_weight)]
    if cfg.freeze_base:
        extras.append(Priming())
    if cfg.full_batch:
        extras.append(FullBatch())
    if cfg.head_scores:
        extras.append(HeadScores(meta["vocab_size"]))
    if cfg.target_val_loss or cfg.target_val_acc:
        extras.append(TargetRace(cfg.target_val_loss, cfg.target_val_acc))
    return Extras(e for e in extras if e is not None)
