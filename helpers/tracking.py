"""
Experiment tracking: each metrics.jsonl row also goes to a tracker, to follow and compare runs live.

    python train.py --log_to=tensorboard     # event files in out_dir/tensorboard/: tensorboard --logdir out-facts
    python train.py --log_to=wandb           # Weights & Biases (pip install wandb); WANDB_MODE=offline stays local
    python train.py --log_to=trackio         # trackio: local-first, the wandb API; trackio show

metrics.jsonl stays the record: train.py appends each eval's row there, then hands the same row to
the tracker, with the row's iter as the step. The tracker gets the row's numbers (a bool as 0 or 1);
lists and dicts (position_loss, head_scores) stay in metrics.jsonl and its plots. The run's config
(what config.json holds) goes to the tracker once, at the start. Only rank 0 logs.

Runs are named as a sweep would group them: the project is log_project (default: the folder that
holds out_dir, else "small-gpt-lab"), the run log_run_name (default: out_dir's own name) and, for
wandb and trackio, the group log_group (tools/compare.py: the sweep's name and each variant).
TensorBoard names a run by its folder, so `tensorboard --logdir` on the folder above shows them all.
"""

import glob
import importlib
import json
import os

TRACKERS = ("wandb", "trackio", "tensorboard")  # each is also the package to install and to import


def run_names(cfg):
    """(project, run name) of a run: its log_project and log_run_name, else read from out_dir."""
    path = os.path.normpath(cfg.out_dir)
    parent = os.path.basename(os.path.dirname(path))
    project = cfg.log_project or (parent if parent not in ("", ".", "..") else "small-gpt-lab")
    return project, cfg.log_run_name or os.path.basename(path)


def scalars(row):
    """The numbers of a metrics row, without its step (iter): what a tracker draws as curves."""
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "iter"}


class Tracker:
    """The run's tracker: log(row) after each metrics row, finish() at the end. log_to="" does nothing."""

    def __init__(self, cfg=None, config_record=None, resumed_at=None):
        """Start the run in the tracker (cfg None or log_to "": nothing is logged, as on ranks other than 0).
        resumed_at: the checkpoint's iteration when the run resumes; TensorBoard then hides the steps
        after it that the earlier run had logged, as metrics.jsonl drops their rows."""
        self.writer = self.run = None
        if cfg is None or not cfg.log_to:
            return
        project, name = run_names(cfg)
        if cfg.log_to == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            folder = os.path.join(cfg.out_dir, "tensorboard")
            if resumed_at is None:  # a fresh run: its curves start afresh, like metrics.jsonl
                for old in glob.glob(os.path.join(glob.escape(folder), "events.out.tfevents.*")):
                    os.remove(old)
            self.writer = SummaryWriter(folder, purge_step=None if resumed_at is None else resumed_at + 1)
            what = f"project {project}, run {name}" + (f", group {cfg.log_group}" if cfg.log_group else "")
            self.writer.add_text("config", f"{what}\n\n```\n{json.dumps(config_record, indent=1)}\n```")
        else:  # wandb and trackio share the API: init(project, name, group, config) -> run.log, run.finish
            module = importlib.import_module(cfg.log_to)
            where = {"dir": cfg.out_dir} if cfg.log_to == "wandb" else {}  # its files beside the run's
            self.run = module.init(project=project, name=name, group=cfg.log_group or None, config=config_record,
                                   **where)

    def log(self, row):
        """One metrics row, at its iter."""
        if self.writer is not None:
            for key, value in scalars(row).items():
                self.writer.add_scalar(key, value, row["iter"])
            self.writer.flush()  # evals are rare: on disk at once, so a live dashboard (or a crash) sees them
        elif self.run is not None:
            self.run.log(scalars(row), step=row["iter"])

    def finish(self):
        if self.writer is not None:
            self.writer.close()
        elif self.run is not None:
            self.run.finish()
