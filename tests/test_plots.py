"""Figures a person reads without the code: titles that name the run's flags, no spikes where few
documents reach, comparisons zoomed on where runs differ with one style per run, a legible lens."""

import json
import math
import os

import matplotlib
import torch
from conftest import train_args

import sample
import train
from helpers import plotting
from tools import analyze


def test_titles_name_the_runs_non_default_flags(facts_dir, tmp_path):
    run = str(tmp_path / "w")
    train.main(train_args(facts_dir, run, "--max_iters=1", "--eval_interval=1", "--layer_windows=(4,0)",
                          "--optimizer=muon"))
    assert plotting.run_title(run) == "w: layer_windows=[4, 0], optimizer=muon"
    record = json.load(open(os.path.join(run, "config.json")))
    record["model"]["layer_windows"] = None
    record["train"]["optimizer"] = "adamw"
    assert plotting.variant_flags(record) == []  # n_layer, n_embd, ... are sizes, not flags
    json.dump(record, open(os.path.join(run, "config.json"), "w"))
    assert plotting.run_title(run) == "w: GPT-2 baseline"


def test_positions_that_few_sequences_reach_are_left_out():
    row = {"position_loss": [2.0, 1.5, 1.0, 0.2, None], "position_count": [100, 100, 40, 9, 0]}
    curve = plotting.position_curve(row)
    assert curve[:3].tolist() == [2.0, 1.5, 1.0] and math.isnan(curve[3]) and math.isnan(curve[4])
    assert plotting.position_curve({"position_loss": [1.0, None]})[0] == 1.0  # rows without counts: all drawn


def test_every_run_of_a_comparison_gets_its_own_style_and_the_axis_zooms_past_the_start():
    for n in (1, 9, 16, 25, 60):
        assert len(set(plotting.distinct_styles(n))) == n
    start_spike = ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9.0, 3.0, 2.1, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    other = ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9.0, 3.0, 2.2, 2.1, 2.1, 2.1, 2.1, 2.1, 2.1, 2.2])
    lo, hi = plotting.zoomed_limits([start_spike, other], skip=0.2)
    assert 1.9 < lo < 2.0 and 2.2 < hi < 2.3


def test_a_comparison_figure_has_both_panels_and_a_legend_entry_per_run(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plotting, "atomic_write", lambda path, write: figures.append(plotting.plt.gcf()))
    curves = {f"run {i}": (range(5), [3, 2, 1 + i / 10, 1, 1]) for i in range(12)}
    plotting.plot_comparison(curves, "run 0", str(tmp_path / "c.png"), "x", "loss", "title")
    fig = figures[0]
    ax, diff = fig.axes
    assert len(ax.lines) == 12 and len(diff.lines) == 11 + 1  # 11 differences and the zero line
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(curves)


def test_the_icl_figure_says_what_t_is_and_which_sign_is_better():
    rows = [{"iter": i, "icl_score": -0.1 * i, "position_loss": [1.0] * 48} for i in range(3)]
    ax = plotting.plot_icl(rows, "run").axes[0]
    assert "T = 48, the context length" in ax.get_title() and "below 0 is better" in ax.get_title()
    assert ax.get_ylabel() == "ICL score (nats): loss at 0.9 T - loss at 0.1 T"


def test_greedy_sampling_prints_one_sample(tiny_run, capsys):
    sample.main([f"--out_dir={tiny_run}", "--start=Q: Where", "--num_samples=3", "--max_new_tokens=5",
                 "--temperature=0"])
    assert capsys.readouterr().out.count("---------------") == 1


def test_the_lens_grid_has_a_colour_bar_and_white_text_on_dark_cells(tiny_run, tmp_path, monkeypatch):
    ckpt = torch.load(os.path.join(tiny_run, "ckpt.pt"), weights_only=True)
    ckpt["model"]["lm_head.weight"] = ckpt["model"]["lm_head.weight"] * 4  # sharper: some cells confident, some not
    ckpt["model"]["transformer.wte.weight"] = ckpt["model"]["lm_head.weight"]
    torch.save(ckpt, tmp_path / "sharp.pt")
    figures = {}
    monkeypatch.setattr(analyze, "save", lambda fig, path: figures.setdefault(os.path.basename(path), fig) and path)
    analyze.main(["lens", f"--ckpt={tmp_path / 'sharp.pt'}", f"--plot_dir={tmp_path}", "--text=Mibe lives in Tulvek."])
    grid = figures["lens.png"]
    assert len(grid.axes) == 2 and grid.axes[1].get_ylabel() == "probability of the top-1 token"  # the colour bar
    image = grid.axes[0].images[0]
    colours = set()
    for text in grid.axes[0].texts:
        x, y = (round(v) for v in text.get_position())
        dark = image.get_array()[y, x] > 0.55
        assert matplotlib.colors.same_color(text.get_color(), "white" if dark else "black")
        colours.add(dark)
    assert colours == {True, False}  # this text has confident and unsure cells: both branches checked
