"""The click-position trade-off in one figure: ΔSB of ``dt`` clicks against the drops they cause, for every update
and energy measured on the same BSDS500 val objects 9-30 (docs/CLICKS.md, "What was tried for the position targets").

    python scripts/plot_click_tradeoff.py [--csv docs/results/click_tradeoff.csv] [--output FIG.png [--overwrite]]
    # the figure in docs/CLICKS.md: --output docs/results/click_tradeoff.png --overwrite

The CSV holds one row per measured setting: ``source`` (features), ``update`` (what changed), ``delta_sb_dt`` (ΔSB of
``dt`` clicks, NoC@90 within 20, %), ``drops_dt`` (share of ``dt`` clicks, over 100, after which IoU fell by more than
one point, %), ``default`` ("yes" for a source's current default) and ``section`` (the docs/CLICKS.md paragraph
with the full table). Issue 21 asks for ΔSB <= 10 % and drops <= 2 % at once: the shaded corner. Every number in the
CSV was measured by ``scripts/evaluate_iis.py`` (its command in that section); this script only draws them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from featlib import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("source", "update", "delta_sb_dt", "drops_dt", "default", "section")
TARGET_DSB, TARGET_DROPS = 10.0, 2.0  # issue 21


def read_rows(path: Path) -> list[dict]:
    """The CSV's rows with numeric ΔSB / drops; ValueError naming the file and row when a column is missing or bad."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; expected {list(COLUMNS)}")
        rows = []
        for i, row in enumerate(reader, start=2):
            try:
                row["delta_sb_dt"], row["drops_dt"] = float(row["delta_sb_dt"]), float(row["drops_dt"])
            except ValueError:
                raise ValueError(f"{path}, line {i}: delta_sb_dt and drops_dt must be numbers, got {row}") from None
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    """Scatter of ΔSB vs drops, numbered points per source, the target corner shaded, the legend of numbers beside."""
    fig, (ax, tx) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1.5, 1]})
    ax.fill_between([0, TARGET_DROPS], -5, TARGET_DSB, color="tab:green", alpha=0.15, label="issue 21's targets")
    styles = {}
    lines = []
    for n, r in enumerate(rows, start=1):
        marker, colour = styles.setdefault(r["source"], [("o", "tab:blue"), ("s", "tab:orange"),
                                                          ("^", "tab:purple")][len(styles) % 3])
        star = r["default"].strip().lower() == "yes"
        ax.scatter(r["drops_dt"], r["delta_sb_dt"], marker="*" if star else marker, s=220 if star else 60,
                   color=colour, edgecolor="k", zorder=3)
        ax.annotate(str(n), (r["drops_dt"], r["delta_sb_dt"]), xytext=(5, 4), textcoords="offset points", fontsize=8)
        lines.append(f"{n:2d}  {r['source']}: {r['update']}" + ("  [default]" if star else ""))
    for source, (marker, colour) in styles.items():
        ax.scatter([], [], marker=marker, color=colour, edgecolor="k", label=source)
    ax.scatter([], [], marker="*", s=150, color="w", edgecolor="k", label="a source's default")
    ax.set(xlabel="dt clicks after which IoU fell by > 1 point (% of 100 clicks)", ylabel="ΔSB of dt clicks (%)",
           title="BSDS500 val objects 9-30: position cost vs drops", xlim=(0, None), ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    tx.axis("off")
    tx.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", type=Path, default=ROOT / "docs/results/click_tradeoff.csv")
    cli.add_output(p, "outputs/click_tradeoff.png")
    a = p.parse_args(argv)
    try:
        rows = read_rows(a.csv)
        out = cli.result_path(a.output, ROOT / "outputs/click_tradeoff.png", a.overwrite)
    except (OSError, ValueError) as e:
        return cli.fail(str(e))
    out.parent.mkdir(parents=True, exist_ok=True)
    plot(rows, out)
    print(f"wrote {out} ({len(rows)} settings)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
