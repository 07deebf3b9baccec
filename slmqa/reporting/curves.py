"""training_curves.png: training loss and evaluation EM/F1 against steps, from the Trainer's log history.

matplotlib is an optional dependency (requirements-extra.txt): without it, or when a plot
fails, the run report goes on without the picture.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PNG_NAME = "training_curves.png"
CURVE_LABELS = {"eval_exact_match": "EM", "eval_exact": "EM", "eval_f1": "F1"}


def logged_series(log_history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one logged quantity; a step logged twice keeps its last value."""
    by_step = {
        int(e["step"]): float(e[key])
        for e in log_history
        if isinstance(e.get(key), (int, float)) and isinstance(e.get("step"), (int, float))
    }
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def write_training_curves(log_history: list[dict], path: Path, eval_keys: tuple[str, ...]) -> Path | None:
    """Plot loss and eval scores by step; None when matplotlib is missing or there is no curve to draw.

    Uses a bare Figure on an Agg canvas rather than pyplot, so a host program's
    matplotlib backend and global figure state are left untouched.
    """
    loss = logged_series(log_history, "loss")
    scores = {key: logged_series(log_history, key) for key in eval_keys}
    scores = {key: series for key, series in scores.items() if series[0]}
    # One point is not a curve: an evaluation-only run logs a single eval entry.
    if len(loss[0]) < 2 and all(len(steps) < 2 for steps, _ in scores.values()):
        logger.info("No training curves to plot (fewer than two logged steps); skipping %s.", path.name)
        return None
    try:
        draw(path, loss, scores)
    except ImportError:
        logger.warning("matplotlib is not installed: pip install matplotlib to get %s.", path.name)
        return None
    except Exception:  # a cosmetic file must not fail a run that has finished its real work
        logger.warning("Could not draw %s.", path.name, exc_info=True)
        return None
    return path


def draw(path: Path, loss: tuple[list[int], list[float]], scores: dict[str, tuple[list[int], list[float]]]) -> None:
    """Loss on the left, EM/F1 on the right; a panel without data is left out."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = [p for p in ("loss", "scores") if (loss[0] if p == "loss" else scores)]
    figure = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        if panel == "loss":
            ax.plot(*loss, marker="o", markersize=3, label="training loss")
            ax.set_ylabel("loss")
            ax.set_title("Training loss")
        else:
            for key, series in scores.items():
                ax.plot(*series, marker="o", markersize=3, label=CURVE_LABELS.get(key, key))
            ax.set_ylabel("score (%)")
            ax.set_title("Evaluation")
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=120)
