"""
Train a GPT, in one readable story: config -> data -> model -> optimizer -> loop -> plots.

    python train.py                                  # the main job: a small GPT on the facts corpus, ~3 min on a CPU
    python train.py --max_iters=200 --out_dir=out-short --layer_windows="(8,64,64,8)"   # any key, on the command line
    python train.py config/train_shakespeare_char_fast.py   # a config file (after prepare/shakespeare_char.py); ~1 min
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py    # DDP on 8 GPUs

Every eval appends one line to out_dir/metrics.jsonl: train/val loss, bits per byte, accuracy, the loss at
every position of the context (in-context learning shows up as that curve bending down along the
sequence) and the mean probability given to the correct next token. The plots are drawn from it,
into out_dir. `python train.py --help` lists every key. What an experiment adds (its metrics, batches,
loss or stopping rule) comes in through its extra (helpers/extras.py), built from the config.
With --log_to each row also goes to TensorBoard, wandb or trackio (helpers/tracking.py).
"""

import math
import os
import time
from dataclasses import asdict

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from helpers.checkpoint import (build_model, resolve_model, restore_rng, save_checkpoint, save_metrics_row,
                                start_run_folder)
from helpers.config import (MAIN_JOB_MODEL, Interrupted, TrainConfig, check_train_config, configure, cooldown_start,
                            main_guard)
from helpers.data import Batches, dataset_dir, forward_kwargs, load_meta
from helpers.device import end_ddp, from_rank0, setup_ddp, setup_device
from helpers.evaluate import evaluate, unigram_distribution
from helpers.extras import make_extras
from helpers.induction import icl_score
from helpers.knowledge import plot_knowledge
from helpers.optim import count_nonfinite, make_optimizer, project_tangent
from helpers.plotting import plot_run
from helpers.tracking import Tracker


# --- the schedule and the step: the loop below calls them each iteration (tools/bench.py times train_step) ---

def get_lr(it, c):
    """Linear warmup for warmup_iters, then lr_schedule's decay. cosine: down to min_lr at lr_decay_iters, then
    min_lr. wsd (warmup-stable-decay): learning_rate until cooldown_start, then down to min_lr at max_iters
    along 1 - sqrt(progress) or 1 - progress, so a run stopped early is a shorter run's prefix until its cooldown."""
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    if not c.decay_lr:
        return c.learning_rate
    if c.lr_schedule == "wsd":
        start = cooldown_start(c)
        progress = max(0, it - start) / max(1, c.max_iters - start)  # 0 until the cooldown, 1 at max_iters
        left = 1 - math.sqrt(progress) if c.cooldown_shape == "1-sqrt" else 1 - progress
        return c.min_lr + left * (c.learning_rate - c.min_lr)
    if it > c.lr_decay_iters:
        return c.min_lr
    ratio = (it - c.warmup_iters) / max(1, c.lr_decay_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (c.learning_rate - c.min_lr)


def train_step(model, optimizer, scaler, get_batch, grad_accum, ctx, grad_clip, ddp=False, grad_projection="none"):
    """One optimizer step over grad_accum micro-batches; returns (the last micro-batch's loss, whether the
    step was applied). model(x, y) returns (logits, loss): the GPT, or a loss around it (an extra's).
    A step whose loss or gradient norm is not finite (a diverging run) is skipped, so the weights never
    take a NaN update; the caller decides whether to go on. grad_projection="tangent" projects the
    gradients (project_tangent) before clipping: the projection keeps each tensor's norm, so the clip is
    the same either way, and clipping the projected gradient clips what is applied."""
    for micro_step in range(grad_accum):
        x, y, extra = get_batch()
        if ddp:  # all-reduce gradients only on the last micro-step
            model.require_backward_grad_sync = micro_step == grad_accum - 1
        with ctx:
            _, loss = model(x, y, **forward_kwargs(extra))
            loss = loss / grad_accum
        scaler.scale(loss).backward()
    if grad_projection == "tangent":  # (a float16 loss scale does not matter: the projection is scale-free)
        project_tangent(p for p in model.parameters() if p.requires_grad)
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    loss = loss.detach() * grad_accum
    # one sync per step; float16's loss scaler skips steps with overflowed gradients itself
    finite = bool((torch.isfinite(loss) & (torch.isfinite(norm) | scaler.is_enabled())).item())
    if finite or scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return loss, finite


def main(argv=None):
    # --- config: TrainConfig (helpers/config.py) for the run, GPTConfig (model.py) for the network ---
    (cfg, mcfg), given = configure([TrainConfig(), MAIN_JOB_MODEL], argv, description=__doc__)
    check_train_config(cfg)
    out_dir, plot_dir = cfg.out_dir, cfg.plot_dir or cfg.out_dir
    if cfg.plot_only:
        for p in plot_run(out_dir, plot_dir) + plot_knowledge(out_dir, plot_dir):
            print(f"wrote {p}")
        return
    cfg, ddp, rank, world = setup_ddp(cfg)  # one process, unless launched by torchrun
    master = rank == 0  # only rank 0 evaluates, logs and writes
    device, device_type, dtype, ctx = setup_device(cfg)
    data_dir = dataset_dir(cfg.dataset, cfg.data_dir, prepare_facts=master)  # (the facts corpus: written if missing)
    if ddp:
        torch.distributed.barrier()  # rank 0 may have just written the facts corpus
    meta = load_meta(data_dir, cfg.dataset)  # the dataset's tokenizer, vocabulary and sizes
    extras = make_extras(cfg, data_dir, meta, device)  # what the run's experiment adds (helpers/extras.py); often none
    # the model's keys: as given (vocab_size from the data), the checkpoint's (resume), or those of the
    # model it fine-tunes (init_from=gpt2, a folder) or primes (freeze_base), plus the keys that add to it
    mcfg, ckpt, base = resolve_model(cfg, mcfg, given, meta, data_dir)
    extras.check(mcfg)  # e.g. head_scores: one (T, T) attention pattern per layer, or a one-line error now

    # --- data: memory-mapped token bins, cut into windows of the model's context ---
    batches = extras.batches(data_dir, meta, mcfg, cfg, device)  # freeze_base: documents split at their prefix
    if batches is None:
        batches = Batches(data_dir, meta, mcfg.block_size, cfg.batch_size, device, cfg.respect_doc_boundaries,
                          mcfg.prefix_lm)
    bytes_per_token = {s: meta["splits"][s]["bytes"] / meta["splits"][s]["tokens"] for s in ("train", "val")}
    unigram = unigram_distribution(batches.paths["train"], meta["dtype"], mcfg.vocab_size) if master else None

    # --- model: from scratch, from the checkpoint in out_dir, or another model's weights (+ LoRA or bias layers) ---
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg, ckpt, base, cfg.base or cfg.init_from, cfg.freeze_base)  # LoRA, priming: new parts learn
    resumed = ckpt is not None
    iter_num, best_val_loss = (ckpt["iter_num"], ckpt["best_val_loss"]) if resumed else (0, float("inf"))
    model.to(device)  # the plain model: evaluated and checkpointed (no DDP or compile wrappers, no _orig_mod.)

    # --- optimizer: AdamW, or Muon + AdamW; one learning-rate schedule drives both ---
    optimizer = make_optimizer(model, cfg, device_type)
    if resumed:
        optimizer.load_state_dict(ckpt["optimizer"])
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "float16"))  # float16 needs loss scaling
    # batches have their own generator, so evals never shift the training data stream
    gen = torch.Generator().manual_seed(cfg.seed + rank)
    if resumed and world == 1:
        restore_rng(ckpt, gen, device_type)  # every random stream as it was: resuming continues exactly
    del ckpt, base  # (their weights are in the model now)

    # --- loss: the step trains on the model's own next-token loss, unless an extra replaces it (said aloud) ---
    loss_model = extras.loss(model, gen)  # forget_weight: the forgetting loss around the model (helpers/knowledge.py)
    if loss_model is None:
        loss_model = model  # model(x, y) -> (logits, loss)
    elif master:
        print(f"training loss: {loss_model.describe()}, in place of the model's next-token loss")
    if cfg.compile:
        print("compiling the model...")
        loss_model = torch.compile(loss_model)
    if ddp:
        loss_model = DDP(loss_model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)

    # the step's batches: random windows of the train split, unless an extra draws them (full_batch: all of it)
    get_batch, batch_size = extras.train_batches(batches, gen) or (lambda: batches.get("train", gen), cfg.batch_size)
    grad_accum = cfg.gradient_accumulation_steps // world
    tokens_per_iter = grad_accum * world * batch_size * mcfg.block_size
    config_record = {"train": asdict(cfg), "model": asdict(mcfg), "dtype": dtype, "device": device, "world_size": world}
    writes = master and not cfg.eval_only  # eval_only reports and leaves out_dir as it was
    if writes:  # config.json, and metrics.jsonl afresh (on resume: its rows up to the checkpoint)
        start_run_folder(out_dir, config_record, keep_until=iter_num if resumed else None,
                         rows_from=os.path.dirname(cfg.resume_from) if cfg.resume_from else None)  # a branch: its trunk's
    # log_to: each metrics row also goes to tensorboard, wandb or trackio (helpers/tracking.py); "": nowhere else
    tracker = Tracker(cfg if writes else None, config_record, resumed_at=iter_num if resumed else None)
    if master:
        print(f"{model.get_num_params() / 1e6:.2f}M parameters | {tokens_per_iter:,} tokens per iteration "
              f"({grad_accum} accumulation steps x {world} processes x {batch_size} x {mcfg.block_size}) "
              f"| {device} {dtype}")

    # --- the loop: evaluate now and then, otherwise one optimizer step per iteration ---
    t_start, start_iter = time.time(), iter_num
    since_eval = (time.time(), iter_num)  # to time training iterations without the evals
    stop = False  # an extra's rule says the run is done (target_val_loss reached)
    skipped = 0  # steps skipped for a non-finite loss or gradient (skip_nonfinite)
    ckpt_path = os.path.join(out_dir, "ckpt.pt")
    saved = iter_num if resumed else None  # the iteration out_dir/ckpt.pt holds for this run (Ctrl-C says it)
    try:
        while True:
            lr = get_lr(iter_num, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_ratio"]

            # evaluate at 0, every eval_interval and at the end (a resumed run already did its first one)
            eval_now = cfg.eval_only or ((iter_num % cfg.eval_interval == 0 or iter_num == cfg.max_iters)
                                         and not (resumed and iter_num == start_iter))
            if master and eval_now:
                t_eval, iters = time.time(), iter_num - since_eval[1]
                # the plain model, not the compiled or DDP-wrapped one: evals run rarely and with other shapes
                m = evaluate(model, batches, cfg.eval_iters, ctx, cfg.seed, bytes_per_token, unigram)
                elapsed = time.time() - t_start
                row = {"iter": iter_num, "train_loss": m["train_loss"], "val_loss": m["val_loss"],
                       "train_bpb": m["train_bpb"], "val_bpb": m["val_bpb"], "train_acc": m["train_acc"],
                       "val_acc": m["val_acc"], "lr": lr, "elapsed_s": round(elapsed, 3),
                       "tokens": iter_num * tokens_per_iter,
                       "tok_per_s": (iter_num - start_iter) * tokens_per_iter / max(elapsed, 1e-9),
                       "ms_per_iter": round(1000 * (t_eval - since_eval[0]) / iters, 3) if iters else None,
                       "mean_p": m["mean_p"], "unigram_kl": m.get("unigram_kl"), "position_loss": m["position_loss"],
                       "position_count": m["position_count"],  # icl_score: late loss minus early (docs/induction.md)
                       "icl_score": icl_score(m["position_loss"]), **extras.metrics(model)}  # e.g. head_scores
                print(f"eval {iter_num}: train loss {m['train_loss']:.4f}, val loss {m['val_loss']:.4f} "
                      f"({m['val_bpb']:.3f} bits/byte), mean p {m['mean_p']:.3f}, val acc {m['val_acc']:.3f}"
                      + extras.summary(row))
                stop = extras.should_stop(row)  # e.g. the race: target_val_loss reached (it records the time)
                if cfg.eval_only:
                    break
                save_metrics_row(out_dir, row)
                tracker.log(row)  # the same row, at its iter (log_to)
                # a non-finite eval is never the best, and its model is never saved
                if math.isfinite(m["val_loss"]) and (m["val_loss"] < best_val_loss or cfg.always_save_checkpoint):
                    best_val_loss = min(best_val_loss, m["val_loss"])
                    if iter_num > 0:
                        save_checkpoint(ckpt_path, model, optimizer, config_record, meta, iter_num, best_val_loss,
                                        gen, device_type)
                        saved = iter_num
                        print(f"saved {ckpt_path}")
                since_eval = (time.time(), iter_num)
            if writes and iter_num in cfg.save_at and not (resumed and iter_num == start_iter):
                # a checkpoint to branch from (wsd: a cooldown to a shorter budget starts here, --resume_from)
                path = os.path.join(out_dir, f"ckpt_{iter_num}.pt")
                save_checkpoint(path, model, optimizer, config_record, meta, iter_num, best_val_loss, gen, device_type)
                print(f"saved {path}")
            if ddp and eval_now and extras.can_stop:  # all stop when rank 0's extras say so
                stop = from_rank0(stop, device)
            if iter_num >= cfg.max_iters or cfg.eval_only or stop:
                break

            t0 = time.time()
            loss, finite = train_step(loss_model, optimizer, scaler, get_batch, grad_accum, ctx, cfg.grad_clip, ddp,
                                      cfg.grad_projection)
            iter_num += 1
            skipped = count_nonfinite(finite, loss, iter_num, skipped, cfg)  # stops a diverging run
            if master and (iter_num % cfg.log_interval == 0 or iter_num == cfg.max_iters):
                lossf = loss.item()  # waits for the device, so dt is the whole step: only when we print
                dt = time.time() - t0
                print(f"iter {iter_num}/{cfg.max_iters}: loss {lossf:.4f}, lr {lr:.2e}, {dt * 1000:.1f} ms/iter, "
                      f"{tokens_per_iter / dt:,.0f} tok/s, ETA {(cfg.max_iters - iter_num) * dt / 60:.1f} min")
    except KeyboardInterrupt:  # Ctrl-C: one line saying where the progress is (a save cut short left the last one)
        held = f"{ckpt_path} holds iteration {saved} (resume with --init_from=resume)" if saved is not None else \
            "no checkpoint of this run yet, so there is nothing to resume"
        raise Interrupted(f"interrupted at iteration {iter_num}: {held}") from None

    # --- plots: loss per position, loss curves, mean probability of the target ---
    if writes:
        extras.finish(iter_num)  # e.g. the race: the target not reached
        tracker.finish()
        print(f"done in {time.time() - t_start:.1f}s; best val loss {best_val_loss:.4f}")
        for p in plot_run(out_dir, plot_dir) + plot_knowledge(out_dir, plot_dir):
            print(f"wrote {p}")
    end_ddp(ddp)


if __name__ == "__main__":
    main_guard(main)
