"""
Launching runs: the tools that train many models (tools/compare.py, tools/prime.py) start each one as
its own `python train.py` process, exactly what a person would type, and reuse finished runs.

train_or_reuse trains one run after another; train_in_workers trains many at once, as submitit jobs:
processes on this machine (its LocalExecutor), or an array job on a SLURM cluster.
"""

import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import deque

from helpers.checkpoint import atomic_write_text, read_metrics
from helpers.config import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository


def train_or_reuse(out_dir, args, inputs=()):
    """Run `python train.py ARGS --out_dir=OUT_DIR --overwrite=True` (its output in out_dir/train.log)
    unless out_dir holds a finished run of the very same arguments; returns the seconds it took.

    out_dir/run.json records the arguments and the time once the run has finished, so a run that
    crashed or was interrupted is trained again, and one that finished is never trained twice.
    inputs: run folders this run starts from (a base checkpoint): when one of them was trained
    again, this run is too.
    """
    args = [*args, f"--out_dir={out_dir}"]
    lock = claim(out_dir)
    if lock is None:  # another process is training it: wait for it, then reuse what it wrote
        print(f"waiting for {out_dir}: another process is training it", flush=True)
        lock = claim(out_dir, wait=True)
    try:
        seconds = finished(out_dir, args, inputs)
        if seconds is not None:
            print(f"reusing {out_dir}")
            return seconds
        print(f"training {out_dir}", flush=True)
        t0, log = time.time(), os.path.join(out_dir, "train.log")
        with open(log, "w") as f:
            r = subprocess.run(train_command(args), stdout=f, stderr=subprocess.STDOUT)
        if r.returncode:
            raise UserError(f"training {out_dir} failed: {last_line(log)} (whole output in {log})")
        return record(out_dir, args, inputs, round(time.time() - t0, 1))
    finally:
        lock.close()


def claim(out_dir, wait=False):
    """Create out_dir and hold an exclusive lock on out_dir/run.lock while this process trains the run,
    so two sweeps over the same folder never train one run twice. Returns the open lock file (close it
    to release), or None when another process holds it (wait=True: block until it is released)."""
    os.makedirs(out_dir, exist_ok=True)
    f = open(os.path.join(out_dir, "run.lock"), "a")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        f.close()
        return None
    return f


def train_command(args):
    return [sys.executable, os.path.join(ROOT, "train.py"), *args, "--overwrite=True"]


def finished(out_dir, args, inputs=()):
    """The seconds of out_dir's finished run of exactly these arguments (and inputs' stamps), or None."""
    done = read_stamp(out_dir)
    if done and done["args"] == args and done.get("inputs", {}) == {d: read_stamp(d) for d in inputs}:
        return done["seconds"]
    return None


def record(out_dir, args, inputs, seconds):
    """Stamp out_dir as a finished run of args (out_dir/run.json); returns seconds."""
    atomic_write_text(os.path.join(out_dir, "run.json"),
                      json.dumps({"args": args, "seconds": seconds, "inputs": {d: read_stamp(d) for d in inputs}}))
    return seconds


def read_stamp(out_dir):
    """out_dir/run.json (what train_or_reuse recorded of a finished run), or None."""
    path = os.path.join(out_dir, "run.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def last_line(log):
    with open(log) as f:
        return (f.read().strip().splitlines()[-1:] or ["no output"])[0]


def failure(e, log, folder):
    """One line on why a job failed: train.py's own error line, else how its process ended."""
    last = last_line(log) if os.path.exists(log) else ""
    if last.startswith("error:"):  # bad input: trying again would fail the same way
        return f"{last} (whole output in {log})"
    m = re.search(r"died with <Signals\.(\w+)|exit status (\d+)", str(e))
    how = (f"killed by {m[1]}" if m[1] else f"exit status {m[2]}") if m else f"{type(e).__name__}, no result"
    return f"{how} (output in {log}, job logs in {folder})"


def cores():
    """The cores this process may use: OMP_NUM_THREADS when whatever started it set it (a job
    scheduler's share), else the CPUs this process is allowed to run on."""
    return int(os.environ.get("OMP_NUM_THREADS") or len(os.sched_getaffinity(0)))


def train_in_workers(runs, workers, gpus=0, executor="local", folder="out-submitit", retries=1, time_min=24 * 60,
                     slurm=None, poll_s=0.5):
    """Train runs ({out_dir: train.py args}) as submitit jobs, up to `workers` at once; reuse finished ones.

    Locally each job is a process with cores() / workers threads (OMP_NUM_THREADS), and with gpus > 0
    a GPU (CUDA_VISIBLE_DEVICES: worker i gets GPU i mod gpus). executor="slurm" submits one array job,
    at most `workers` of its tasks running at once, with slurm = {"partition", "account", "gpus", "cpus"}.
    A run is killed after time_min minutes. A job that fails (train.py crashed, its process was killed)
    loses only its own run, which is tried again up to `retries` times and then reported.
    Prints one line per run as it ends; returns ({out_dir: seconds}, {out_dir: error line}).
    """
    import submitit

    seconds, failed = {}, {}
    todo = deque()
    for out_dir, args in runs.items():
        args = [*args, f"--out_dir={out_dir}"]
        s = finished(out_dir, args)
        if s is None:
            todo.append((out_dir, args))
        else:
            seconds[out_dir] = s
    n, ended = len(runs), len(seconds)
    if seconds:
        print(f"reusing {len(seconds)} finished run(s) of {n}")
    if not todo:
        return seconds, failed
    if executor == "slurm":
        slurm = slurm or {}
        threads = slurm.get("cpus") or 1
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        ex.update_parameters(timeout_min=time_min, gpus_per_node=slurm.get("gpus", 0),
                             cpus_per_task=threads, slurm_partition=slurm.get("partition") or None,
                             slurm_account=slurm.get("account") or None, slurm_array_parallelism=workers,
                             name="compare")
        capacity = len(todo)  # SLURM itself keeps at most `workers` tasks of the array running
    else:
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=time_min, gpus_per_node=1 if gpus else 0)
        threads, capacity = max(1, cores() // workers), workers
    print(f"training {len(todo)} run(s), {workers} at once ({executor}: "
          + ("one GPU each)" if gpus else f"{threads} thread(s) each)"), flush=True)
    free = list(range(workers))  # worker slots; locally slot i is GPU i when there are GPUs
    running, tries, locks, waiting, told = {}, {}, {}, {}, set()
    t_start = time.time()

    def take():  # the next run to start, holding its lock; a run another process trains waits for it
        nonlocal ended
        while todo:
            out_dir, args = todo.popleft()
            lock = claim(out_dir)
            if lock is None:
                if out_dir not in told:
                    print(f"waiting for {out_dir}: another process is training it", flush=True)
                    told.add(out_dir)
                waiting[out_dir] = args
                continue
            s = finished(out_dir, args)  # that other process may have finished it meanwhile
            if s is None:
                locks[out_dir] = lock
                return out_dir, args
            lock.close()
            seconds[out_dir], ended = s, ended + 1
            print(f"[{ended}/{n}] reusing {out_dir}, which another process trained", flush=True)
        return None

    def job(out_dir, args):  # the command a person would type, its output in out_dir/train.log
        os.makedirs(out_dir, exist_ok=True)
        log = shlex.quote(os.path.join(out_dir, "train.log"))
        command = f"OMP_NUM_THREADS={threads} exec {shlex.join(train_command(args))} > {log} 2>&1"
        return submitit.helpers.CommandFunction(["sh", "-c", command], verbose=False, cwd=os.getcwd())

    try:
        while todo or running or waiting:
            todo.extend(waiting.items())  # runs other processes were training: see whether they are free now
            waiting.clear()
            batch = []
            while len(running) + len(batch) < capacity and (run := take()):
                batch.append(run)
            if executor == "slurm" and batch:  # one array job: SLURM throttles it to `workers` tasks
                with ex.batch():
                    jobs = [ex.submit(job(*run)) for run in batch]
                running.update({j: (run, None, time.time()) for j, run in zip(jobs, batch)})
            for run in batch if executor != "slurm" else ():
                slot = free.pop()
                if gpus:
                    ex.update_parameters(visible_gpus=(slot % gpus,))  # more workers than GPUs: shared in turn
                running[ex.submit(job(*run))] = (run, slot, time.time())
            time.sleep(poll_s)
            for j in [j for j in running if j.done()]:
                (out_dir, args), slot, t0 = running.pop(j)
                if slot is not None:
                    free.append(slot)
                locks.pop(out_dir).close()
                try:
                    j.result()
                    seconds[out_dir] = record(out_dir, args, (), round(time.time() - t0, 1))
                    ended += 1
                    val = read_metrics(out_dir)[-1].get("val_loss", float("nan"))
                    print(f"[{ended}/{n}] {out_dir}: val loss {val:.4f}, {seconds[out_dir] / 60:.1f} min "
                          f"({time.time() - t_start:.0f} s into the sweep)", flush=True)
                except Exception as e:  # train.py failed, or its worker was killed
                    why = failure(e, os.path.join(out_dir, "train.log"), folder)
                    tries[out_dir] = tries.get(out_dir, 0) + 1
                    if tries[out_dir] <= retries and not why.startswith("error:"):  # (bad input fails again)
                        print(f"[{ended}/{n}] {out_dir} failed ({why}); trying again", flush=True)
                        todo.append((out_dir, args))
                    else:
                        ended += 1
                        failed[out_dir] = why
                        print(f"[{ended}/{n}] {out_dir} FAILED: {failed[out_dir]}", flush=True)
    finally:  # interrupted: stop this sweep's local workers (a rerun retrains only their runs)
        for j in running if executor != "slurm" else ():
            j.cancel(check=False)
        for lock in locks.values():
            lock.close()
    return seconds, failed

