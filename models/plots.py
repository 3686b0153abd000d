"""Plots for people: SHAP summary, reliability curve, precision-recall curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trialwatch.models.features import FEATURE_NAMES


def write_plots(out: Path, booster, X_test, y_test, p_test, logistic, oracle) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    rng = np.random.default_rng(3)
    sample = rng.choice(len(X_test), min(3000, len(X_test)), replace=False)
    contrib = booster.predict(X_test[sample], pred_contrib=True)[:, :-1]
    try:
        import shap

        shap.summary_plot(contrib, X_test[sample], feature_names=list(FEATURE_NAMES), show=False,
                          max_display=15)  # fmt: skip
        plt.title("TreeSHAP: what drives the 60-day dropout risk")
        plt.tight_layout()
        plt.savefig(out / "shap_summary.png", dpi=110)
        plt.close("all")
    except Exception:  # the plot is a nicety; never fail training on it
        plt.close("all")

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = np.quantile(p_test, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, p_test, side="right") - 1, 0, 9)
    mean_p = [p_test[which == b].mean() for b in range(10) if (which == b).any()]
    mean_y = [y_test[which == b].mean() for b in range(10) if (which == b).any()]
    ax.plot([0, max(mean_p + mean_y)], [0, max(mean_p + mean_y)], "k:", label="perfect")
    ax.plot(mean_p, mean_y, "o-", label="LightGBM (calibrated)")
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Reliability (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    curves = [("LightGBM", p_test), ("logistic", logistic)]
    if oracle is not None:  # only a simulated world knows the true probabilities
        curves.append(("oracle", oracle))
    for name, score in curves:
        precision, recall, _ = precision_recall_curve(y_test, score)
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pr_curve.png", dpi=110)
    plt.close(fig)
