"""What a search reports: a table of trials (text and CSV) and a figure of the objective."""

import csv
import io

import matplotlib.pyplot as plt
import numpy as np

from tfvae.evaluation import plots

COMPLETED = "COMPLETED"


def format_value(value):
    """A choice or measurement as a person reads it: `16`, `0.001`, `27.1453`, `-`."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table_columns(searched, objective):
    """The columns of the trial table, in order."""
    return ["trial", *searched, objective, "best epoch", "epochs", "parameters", "seconds"]


def _cell(row, column, objective):
    if column == objective and row["status"] != COMPLETED:
        return row["status"].lower()
    if column == "seconds" and row["seconds"] is not None:
        return f"{row['seconds']:.1f}"
    return format_value(row.get(column))


def format_table(rows, searched, objective, best_trial=None):
    """The trial table as aligned text, the best trial marked `<- best`."""
    columns = table_columns(searched, objective)
    cells = [columns] + [[_cell(row, c, objective) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for index, line in enumerate(cells):
        text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        if index > 0 and rows[index - 1]["trial"] == best_trial:
            text += "  <- best"
        lines.append(text.rstrip())
    return "\n".join(lines)


def format_csv(rows, searched, objective):
    """The trial table as CSV, with the status and unrounded numbers."""
    columns = [*table_columns(searched, objective), "status"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: "" if row.get(c) is None else row[c] for c in columns})
    return out.getvalue()


def objective_figure(rows, objective, title, latent_dims=None, best_trial=None):
    """The objective of every completed trial against its latent size (log2 axis)."""

    done = [r for r in rows if r["status"] == COMPLETED and r[objective] is not None]
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    if done:
        sizes = np.array([r["latent_dim"] for r in done], dtype=float)
        values = np.array([r[objective] for r in done], dtype=float)
        axis.scatter(sizes, values, s=28, alpha=0.7, label="trial")
        by_size = sorted({s: values[sizes == s].min() for s in set(sizes.tolist())}.items())
        if len(by_size) > 1:
            axis.plot(*zip(*by_size, strict=True), "-", linewidth=1, label="best per latent size")
        best = [r for r in done if r["trial"] == best_trial]
        if best:
            axis.scatter(
                [best[0]["latent_dim"]],
                [best[0][objective]],
                marker="*",
                s=220,
                color="tab:red",
                label=f"best (trial {best_trial})",
                zorder=3,
            )
        axis.legend(fontsize=8)
    else:
        axis.text(0.5, 0.5, "no completed trial", ha="center", transform=axis.transAxes)
    ticks = sorted(set(latent_dims or [r["latent_dim"] for r in done]))
    axis.set_xscale("log", base=2)
    if ticks:
        axis.set_xticks(ticks)
        axis.set_xticklabels([str(t) for t in ticks])
        axis.minorticks_off()
    axis.set_xlabel("latent size (latent_dim)")
    axis.set_ylabel(f"{objective} (lower is better)")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def save_objective_figure(rows, objective, title, path, latent_dims=None, best_trial=None):
    plots.save_figure(objective_figure(rows, objective, title, latent_dims, best_trial), path)
