"""Loss-curve plots of a run directory: train and validation loss against the update step, as SVG and PNG."""

from __future__ import annotations

from pathlib import Path

from t5kit.errors import T5kitError
from t5kit.train.metrics import METRICS_NAME, read_metrics


class PlotError(T5kitError):
    """A run directory without metrics to plot."""


def plot_losses(run_dir: str | Path, output_dir: str | Path | None = None, name: str = "loss") -> list[Path]:
    """Draw train and validation loss from run_dir/metrics.jsonl into NAME.svg and NAME.png; return both paths.

    When the run recorded a unigram-entropy baseline, it is drawn as a horizontal line. When the first
    losses dwarf the rest (T5's init starts far above ln(vocab)), the y-axis is cut above them.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    if not (run_dir / METRICS_NAME).is_file():
        raise PlotError(f"{run_dir / METRICS_NAME} not found; pass the output_dir of a pretraining run")
    records = read_metrics(run_dir)
    train = [(r["step"], r["loss"]) for r in records if r.get("kind") == "train"]
    val = [(r["step"], r["val_loss"]) for r in records if r.get("kind") == "val"]
    baseline = next((r for r in records if r.get("kind") == "baseline"), None)
    if not train and not val:
        raise PlotError(f"{run_dir / METRICS_NAME} contains no train or validation loss records yet")

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if train:
        axes.plot(*zip(*train), label="train loss", linewidth=1.2)
    if val:
        axes.plot(*zip(*val), label="validation loss", marker="o", markersize=3, linewidth=1.5)
    if baseline is not None:
        entropy = baseline["unigram_entropy"]
        axes.axhline(entropy, color="gray", linestyle="--", linewidth=1,
                     label=f"unigram entropy of validation targets ({entropy:.2f})")
        axes.axhline(entropy - 1.0, color="gray", linestyle=":", linewidth=1, label="1 nat below it")
    top = _axis_top([loss for _, loss in train + val], val, baseline)
    if top is not None:
        axes.set_ylim(top=top)
        axes.text(0.99, 0.01, "early train loss above the axis is cut off", transform=axes.transAxes,
                  ha="right", va="bottom", fontsize=8, color="gray")
    axes.set_xlabel("update step")
    axes.set_ylabel("cross entropy (nats per target token)")
    axes.set_title(run_dir.name)
    axes.grid(True, alpha=0.3)
    axes.legend()

    output_dir = Path(output_dir) if output_dir is not None else run_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{name}.svg", output_dir / f"{name}.png"]
    figure.savefig(paths[0])
    figure.savefig(paths[1], dpi=120)
    return paths


def _axis_top(losses: list[float], val: list[tuple[int, float]], baseline: dict | None) -> float | None:
    """Return a y-axis top that cuts off a steep start (max over twice the 90th percentile), or None."""
    import numpy as np

    if len(losses) < 10:
        return None
    typical = float(np.quantile(losses, 0.9))
    if max(losses) <= 2 * typical:
        return None
    anchors = [typical]
    if val:
        anchors.append(val[0][1])
    if baseline is not None:
        anchors.append(baseline["unigram_entropy"])
    return 1.1 * max(anchors)
