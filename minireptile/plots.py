"""Figures, built with matplotlib's object-oriented API and returned to the caller.

Nothing here touches pyplot's state: no backend is chosen, no figure becomes the "current" one, so a
student's own pyplot figures keep working beside these. Each function returns a
``matplotlib.figure.Figure``, which a notebook shows inline like any other figure (as the value of a
cell, or with ``display(fig)``); with ``path`` it is also written there as a PNG, whole or not at all.
"""
import time

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from ._atomic import atomic_write


def _figure(rows=1, cols=1, **kwargs):
    """A Figure of its own (not pyplot's) and its axes."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(rows, cols, **kwargs)


def save_figure(fig, path):
    """Write the figure as a PNG, whole or not at all (Ctrl-C leaves no half-written picture)."""
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")


def _done(fig, path):
    """The figure, also written to ``path`` if one is given."""
    if path is not None:
        save_figure(fig, path)
    return fig


def sine_panels(panels, path=None):
    """One panel per model: the true curve, the support points and the adapted predictions.

    panels: [(title, x (Q,), y_true (Q,), x_support (K,), y_support (K,), {step: prediction (Q,)})].
    """
    fig, axes = _figure(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True, squeeze=False)
    for ax, (title, x, y_true, xs, ys, predictions) in zip(axes[0], panels):
        ax.plot(x, y_true, color="black", lw=2, label="true function")
        colors = colormaps["viridis"](np.linspace(0.1, 0.9, len(predictions)))
        for color, (step, pred) in zip(colors, predictions.items()):
            ax.plot(x, pred, color=color, lw=1.5, label=f"after {step} steps")
        ax.scatter(xs, ys, color="crimson", zorder=5, label="support points")
        ax.set_title(title)
        ax.set_xlabel("x")
    axes[0, 0].set_ylabel("y")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    return _done(fig, path)


def learning_curves(curves, path=None, xlabel="outer iteration", ylabel="", title="", hlines=None,
                    logy=False, bands=None):
    """curves: {label: (x, y)}; hlines: {label: y} drawn dashed; bands: {label: half-width like y},
    shaded around the curve (a 95% interval)."""
    fig, ax = _figure(figsize=(7, 4.5))
    for label, (x, y) in curves.items():
        line, = ax.plot(x, y, label=label, lw=1.5)
        if bands and label in bands:
            y, half = np.asarray(y), np.asarray(bands[label])
            ax.fill_between(x, y - half, y + half, color=line.get_color(), alpha=0.15, lw=0)
    for label, y in (hlines or {}).items():
        ax.axhline(y, ls="--", color="gray", lw=1)
        ax.annotate(label, (ax.get_xlim()[0], y), fontsize=8, color="gray",
                    xytext=(3, 3), textcoords="offset points")
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(curves) > 4:                              # many curves (and bands): the legend beside the axes
        fig.set_size_inches(9, 4.5)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
        fig.subplots_adjust(right=0.75)
    else:
        ax.legend(fontsize=8)
    return _done(fig, path)


class LiveCurves:
    """Learning curves that grow while training runs: ``update(label, x, y)`` adds a point and redraws.

    In a notebook the figure is shown once, where ``LiveCurves`` is made, and replaced in place as points
    come, at most once every ``every`` seconds (each redraw renders a picture: a fast run would spend
    more time drawing than training), and once more with every point when the cell ends; elsewhere it
    only collects. ``figure`` is the Figure itself.
    """

    def __init__(self, xlabel="outer iteration", ylabel="", title="", logy=False, hlines=None, every=1.0):
        self.figure, self.ax = _figure(figsize=(7, 4.5))
        self.labels = dict(xlabel=xlabel, ylabel=ylabel, title=title, logy=logy, hlines=hlines or {})
        self.points = {}                                         # {label: ([x], [y])}
        self.every, self._drawn, self._pending = every, float("-inf"), False
        self._handle = self._shell = None
        try:
            from IPython import get_ipython
            from IPython.display import display
            self._shell = get_ipython()
            if self._shell is not None:
                self._handle = display(self.figure, display_id=True)
                self._shell.events.register("post_run_cell", self._cell_done)
        except ImportError:
            pass

    def update(self, label, x, y):
        xs, ys = self.points.setdefault(label, ([], []))
        xs.append(x)
        ys.append(y)
        self._pending = True
        if self._handle is None or time.monotonic() - self._drawn >= self.every:
            self._draw()

    def _draw(self):
        self.ax.clear()
        for name, (px, py) in self.points.items():
            self.ax.plot(px, py, "o-", ms=3, lw=1.5, label=name)
        for name, value in self.labels["hlines"].items():
            self.ax.axhline(value, ls="--", color="gray", lw=1, label=name)
        if self.labels["logy"]:
            self.ax.set_yscale("log")
        self.ax.set(xlabel=self.labels["xlabel"], ylabel=self.labels["ylabel"], title=self.labels["title"])
        self.ax.grid(alpha=0.3)
        self.ax.legend(fontsize=8)
        if self._handle is not None:
            self._handle.update(self.figure)
        self._drawn, self._pending = time.monotonic(), False

    def _cell_done(self, result=None):
        """After the cell that made it: the last points drawn, and no more calls from IPython."""
        if self._pending:
            self._draw()
        self._shell.events.unregister("post_run_cell", self._cell_done)


def taylor_residuals(lrs, curves_by_k, path=None):
    """One panel per k: |exact - leading-order expansion| against lr, with and without the
    lr H g terms, for each method (log-log)."""
    fig, axes = _figure(1, len(curves_by_k), figsize=(4.6 * len(curves_by_k), 4), squeeze=False)
    for ax, (k, curves) in zip(axes[0], curves_by_k.items()):
        for (method, (full, none, s_full, s_none)), color in zip(curves.items(), ["C0", "C1", "C2"]):
            ax.loglog(lrs, full, "-o", color=color, ms=3, label=f"{method}: slope {s_full:.2f}")
            ax.loglog(lrs, none, "--", color=color, label=f"{method}, no lr Hg terms: {s_none:.2f}")
        ax.set(title=f"k = {k}", xlabel="inner step lr")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("|exact - expansion|")
    return _done(fig, path)


def joint_vs_reptile(sine_part, omni_part, path=None):
    """Left: held-out sine MSE after adaptation by k. Middle: k = 5 by outer step size.
    Right: Omniglot 1-shot accuracy by k (if given). ``joint.SineStudy`` and ``joint.OmniglotStudy``."""
    panels = 3 if omni_part else 2
    fig, axes = _figure(1, panels, figsize=(5 * panels, 4))
    for k, curve in sine_part.curves.items():
        axes[0].plot(curve.iterations, curve.values, label=f"k = {k}" + (" (joint training)" if k == 1 else ""))
    axes[0].set(yscale="log", xlabel="outer iteration", ylabel="held-out MSE after 32 steps",
                title="sine waves")
    eps, mse = zip(*sorted(sine_part.step_sizes.items()))
    axes[1].plot(eps, mse, "o-")
    axes[1].set(xscale="log", xlabel="outer step size eps", ylabel="held-out MSE after 32 steps",
                title="sine waves, Reptile k = 5")
    if omni_part:
        for k, curve in omni_part.curves.items():
            axes[2].plot(curve.iterations, curve.values, "o-", label=f"k = {k}" + (" (joint training)" if k == 1 else ""))
        axes[2].axhline(0.2, ls="--", color="gray", lw=1)
        axes[2].set(xlabel="outer iteration", ylabel="held-out 5-way 1-shot accuracy",
                    title="Omniglot")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _done(fig, path)


def method_comparison(results, path=None):
    """The comparison of methods (``comparison.run``'s Comparison): held-out accuracy against outer
    iterations and against training seconds (each K-shot a line style, 95% bands), and each
    method's relative variance and cosine to MAML's mean update, measured along its own run."""
    fig, axes = _figure(2, 2, figsize=(12, 8.5))
    styles = ["-", "--", ":", "-."]
    for (method, r), color in zip(results.methods.items(), colormaps["tab10"].colors):
        curve = (results.at_init,) + tuple(r.curve)
        for k, style in zip(results.at_init.held_out, styles):
            acc = np.array([p.held_out[k][0].accuracy for p in curve])
            half = np.array([p.held_out[k][0].ci95 for p in curve])
            for ax, x in ((axes[0, 0], [p.iteration for p in curve]), (axes[0, 1], [p.train_seconds for p in curve])):
                ax.plot(x, acc, style, color=color, marker="o", ms=3, label=f"{r.label}, {k}-shot")
                ax.fill_between(x, acc - half, acc + half, color=color, alpha=0.12, lw=0)
        spread = [p.variance[method] for p in curve if method in p.variance]
        its = [p.iteration for p in curve if method in p.variance]
        relative = np.array([s.relative_variance_corrected for s in spread], dtype=float)
        relative[~np.isfinite(relative)] = np.nan                     # no expected update visible there
        axes[1, 0].plot(its, relative, "o-", color=color, ms=3, label=r.label)
        if all(s.cosine is not None for s in spread):
            axes[1, 1].plot(its, [s.cosine for s in spread], "o-", color=color, ms=3, label=r.label)
    titles = [("outer iteration", "held-out accuracy (non-transductive)", "accuracy by iteration"),
              ("training seconds (evaluations excluded)", "held-out accuracy (non-transductive)",
               "accuracy by compute"),
              ("outer iteration", "tr Cov(update) / |E update|^2 (bias-corrected)",
               "relative variance of each method's update, over tasks"),
              ("outer iteration", "cosine(mean update, MAML's mean update)", "direction against exact MAML")]
    for ax, (xlabel, ylabel, title) in zip(axes.ravel(), titles):
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[1, 0].set_yscale("log")
    fig.tight_layout()
    return _done(fig, path)
