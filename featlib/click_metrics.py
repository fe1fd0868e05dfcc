"""Click robustness metrics over simulated trajectories: NoC over seeds, RClicks' ΔSB / ΔGR, IoU@1 noise-to-signal,
drops, honoured clicks, and a paired bootstrap between two feature sources.

    s = summarise(objects, max_clicks=20)      # objects: per-object records (below) of ONE clicker
    s["noc90"], s["noc90_std"], s["nsr_iou1"], s["never_falls"], s["clicks_honoured"]
    delta_sb(noc90_dt, noc90_center); delta_gr(noc90_worst, noc90_best)
    paired_bootstrap(noc_a, noc_b)             # {"mean_diff", "ci95": [lo, hi], ...}
    delta_sb_interval(noc_dt, noc_center)      # [lo, hi]: ΔSB's 95 % interval over resampled objects
    compare_results(result_a, result_b)        # two scripts/evaluate_iis.py JSONs, per common clicker

A per-object record is ``{"name": str, "runs": [{"seed": s, "ious": [N floats], "clicks": [[y, x, positive], ...],
"honoured": bool}, ...]}`` (one run per seed, the same seeds for every object). With IoU trajectories
``I[o, s, k]`` (object o, seed s, after click k + 1; N clicks):

- ``NoC@t[o, s]`` = first k + 1 with ``I[o, s, k] >= t`` among the first ``max_clicks``, else ``max_clicks``.
- ``noc90`` = mean over seeds of the per-seed dataset mean ``m_s = mean_o NoC@90[o, s]``; ``noc90_std`` = the
  standard deviation of ``m_s`` over seeds (ddof 0), as RClicks' "mean ± std over click groups" (its groups are our
  seeds). Same for 85 and 95. ``noc90_p10 / p50 / p90``: percentiles of NoC@90 over all (object, seed) trajectories.
- ``delta_sb`` (RClicks' ΔSB, the sim-to-real bias): ``(NoC@90_clicker - NoC@90_center) / NoC@90_center × 100``, the
  increase in % of a clicker's NoC over the centre protocol's on the same objects.
- ``delta_gr`` (RClicks' ΔGR, the spread between click groups): ``(NoC@90_worst - NoC@90_best) / NoC@90_best × 100``,
  with the adversarial ``worst:M`` and ``best:M`` clickers (same M) standing in for the hardest and easiest group.
- ``nsr_iou1``: per object ``std_s I[o, s, 0] / mean_s I[o, s, 0] × 100`` (ddof 0), averaged over objects (an object
  whose IoU@1 is 0 on every seed counts 0); None with one seed.
- ``delta_sb_ci95`` / ``nsr_iou1_ci95``: percentile bootstrap intervals over objects (``N_BOOT`` resamples of the
  objects with replacement, the per-object values of both clickers resampled together). They say how far a target
  such as "ΔSB <= 10 %" is from what the objects resolve; the seeds' own noise is inside the per-object means.
- ``drops``: clicks after which IoU fell (> 1e-9); ``drops_over_0.01``: fell by more than one IoU point;
  ``drops_over_0.01_share`` = that count / clicks made. Per click index: ``drops_per_click``,
  ``drops_over_0.01_per_click`` (index k: the fall from click k to k + 1; index 0 is always 0).
- ``never_falls``: share of trajectories whose IoU never falls (> 1e-9). ``clicks_honoured``: share of trajectories in
  which every clicked pixel kept its clicked label after every later click.
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = {"85": 0.85, "90": 0.90, "95": 0.95}
EPS = 1e-9  # a fall smaller than this is float noise, not a drop
N_BOOT = 10000  # bootstrap resamples: the 2.5 % quantile's Monte-Carlo error is then ~0.3 % of its spread


def noc(ious: np.ndarray, threshold: float, max_clicks: int) -> np.ndarray:
    """NoC of trajectories ``ious`` [..., N] -> int [...]: clicks to reach ``threshold`` within ``max_clicks``."""
    a = np.asarray(ious, np.float64)[..., :max_clicks]
    hit = a >= threshold
    return np.where(hit.any(-1), hit.argmax(-1) + 1, max_clicks)


def _arrays(objects: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ious [O, S, N], honoured bool [O, S], clicks made int [O, S]) from per-object records."""
    if not objects:
        raise ValueError("no objects to summarise")
    seeds = [r["seed"] for r in objects[0]["runs"]]
    for o in objects:
        if [r["seed"] for r in o["runs"]] != seeds:
            raise ValueError(f"object {o['name']!r} was run with seeds {[r['seed'] for r in o['runs']]}, not {seeds}")
    lengths = {len(r["ious"]) for o in objects for r in o["runs"]}
    if len(lengths) != 1:
        raise ValueError(f"trajectories of different lengths {sorted(lengths)}")
    ious = np.array([[r["ious"] for r in o["runs"]] for o in objects], np.float64)
    honoured = np.array([[bool(r["honoured"]) for r in o["runs"]] for o in objects])
    made = np.array([[len(r["clicks"]) for r in o["runs"]] for o in objects])
    return ious, honoured, made


def nsr(iou1: np.ndarray) -> float | None:
    """Noise-to-signal of IoU@1 ``iou1`` [O, S] in %, averaged over objects (module doc); None when S < 2."""
    iou1 = np.asarray(iou1, np.float64)
    if iou1.ndim != 2:
        raise ValueError(f"iou1 must be [objects, seeds], got shape {iou1.shape}")
    if iou1.shape[1] < 2:
        return None
    return float(np.mean(_nsr_per_object(iou1)))


def _nsr_per_object(iou1: np.ndarray) -> np.ndarray:
    """Per-object noise-to-signal [O] (%) of IoU@1 [O, S]."""
    mean, std = iou1.mean(1), iou1.std(1)
    return np.where(mean > 0, std / np.maximum(mean, EPS), 0.0) * 100


def delta_sb(noc_clicker: float, noc_center: float) -> float:
    """RClicks' ΔSB in %: ``(noc_clicker - noc_center) / noc_center * 100``."""
    if noc_center <= 0:
        raise ValueError(f"the centre protocol's NoC must be > 0, got {noc_center}")
    return float((noc_clicker - noc_center) / noc_center * 100)


def bootstrap_interval(stat, *arrays, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile interval of ``stat`` under resampling objects: every array's axis 0 is the object axis (the same
    resampled objects for all arrays); ``stat`` maps the resampled arrays [n_boot, n, ...] to [n_boot] values."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    if not arrays or arrays[0].ndim == 0 or arrays[0].shape[0] == 0:
        raise ValueError("bootstrap_interval needs at least one non-empty array with an object axis")
    n = arrays[0].shape[0]
    if any(a.ndim == 0 or a.shape[0] != n for a in arrays):
        raise ValueError(f"every array needs the same number of objects on axis 0, got {[a.shape for a in arrays]}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    idx = np.random.default_rng(seed).integers(0, n, (int(n_boot), n))
    values = np.asarray(stat(*(a[idx] for a in arrays)), np.float64)
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def delta_sb_interval(noc_clicker, noc_center, n_boot: int = N_BOOT, level: float = 0.95) -> list[float]:
    """Bootstrap interval of ΔSB (%) from per-object NoC@90 [n] (mean over seeds) of a clicker and of the centre
    protocol on the same objects, in the same order."""
    a, b = np.asarray(noc_clicker, np.float64), np.asarray(noc_center, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"noc_clicker and noc_center must be 1-D of the same length, got {a.shape} and {b.shape}")
    if np.any(b <= 0):
        raise ValueError("the centre protocol's per-object NoC must be > 0")
    return bootstrap_interval(lambda x, y: (x.mean(1) - y.mean(1)) / y.mean(1) * 100, a, b, n_boot=n_boot,
                              level=level)


def delta_gr(noc_worst: float, noc_best: float) -> float:
    """RClicks' ΔGR in %: ``(noc_worst - noc_best) / noc_best * 100``."""
    if noc_best <= 0:
        raise ValueError(f"the best clicker's NoC must be > 0, got {noc_best}")
    return float((noc_worst - noc_best) / noc_best * 100)


def summarise(objects: list[dict], max_clicks: int) -> dict:
    """Robustness summary of one clicker's per-object records (module doc for every key)."""
    ious, honoured, made = _arrays(objects)
    n_obj, n_seeds, n = ious.shape
    out: dict = {"n_objects": n_obj, "n_seeds": n_seeds, "n_clicks": n, "max_clicks": max_clicks}
    for name, t in THRESHOLDS.items():
        per = noc(ious, t, max_clicks)  # [O, S]
        seed_means = per.mean(0)
        out[f"noc{name}"] = float(seed_means.mean())
        out[f"noc{name}_std"] = float(seed_means.std())
        if name != "85":
            for p in (10, 50, 90):
                out[f"noc{name}_p{p}"] = float(np.percentile(per, p))
    out["iou@1"] = float(ious[:, :, 0].mean())
    out["nsr_iou1"] = nsr(ious[:, :, 0])
    out["nsr_iou1_ci95"] = (None if n_seeds < 2 else
                            bootstrap_interval(lambda v: v.mean(1), _nsr_per_object(ious[:, :, 0])))
    fall = np.zeros_like(ious)
    fall[..., 1:] = np.maximum(ious[..., :-1] - ious[..., 1:], 0)
    sizes = fall[fall > EPS]
    out["drops"] = int((fall > EPS).sum())
    out["drops_over_0.01"] = int((fall > 0.01).sum())
    out["clicks_made"] = int(made.sum())
    out["drops_over_0.01_share"] = float(out["drops_over_0.01"] / max(out["clicks_made"], 1))
    out["drop_size_mean"] = float(sizes.mean()) if sizes.size else 0.0
    out["drop_size_max"] = float(sizes.max()) if sizes.size else 0.0
    out["objects_with_drops"] = int((fall > EPS).any(axis=(1, 2)).sum())
    out["never_falls"] = float((~(fall > EPS).any(-1)).mean())
    out["clicks_honoured"] = float(honoured.mean())
    out["mean_iou_per_click"] = [float(v) for v in ious.mean((0, 1))]
    out["drops_per_click"] = [int(v) for v in (fall > EPS).sum((0, 1))]
    out["drops_over_0.01_per_click"] = [int(v) for v in (fall > 0.01).sum((0, 1))]
    return out


def paired_bootstrap(a, b, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0) -> dict:
    """Paired percentile bootstrap of ``mean(a - b)`` for per-object values ``a``, ``b`` [n] (same objects, same
    order): objects are resampled with replacement ``n_boot`` times. Returns {"mean_diff", "ci95": [lo, hi], "n",
    "n_boot", "level"}; an interval that excludes 0 says the difference is not resampling noise at that level."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"a and b must be non-empty 1-D arrays of the same length, got {a.shape} and {b.shape}")
    d = a - b
    ci = bootstrap_interval(lambda v: v.mean(1), d, n_boot=n_boot, level=level, seed=seed)
    return {"mean_diff": float(d.mean()), "ci95": ci, "n": int(d.size), "n_boot": int(n_boot), "level": level}


def compare_results(a: dict, b: dict, key: str = "noc90", n_boot: int = N_BOOT) -> dict:
    """Paired bootstrap of per-object ``key`` (mean over seeds; noc85 / noc90 / noc95) of result ``a`` minus result
    ``b`` (``scripts/evaluate_iis.py`` JSONs), per clicker present in both, on the objects (names) in both.

    Also reports ``same_first_click``: the share of common (object, seed) trajectories whose first click is the same
    pixel in both — 1.0 when both ran the same clicker and seeds on the same objects (common random numbers).
    """
    name = key.removeprefix("noc")
    if name not in THRESHOLDS:
        raise ValueError(f"key must be one of {['noc' + k for k in THRESHOLDS]}, got {key!r}")
    ca, cb = a.get("clickers"), b.get("clickers")
    if not ca or not cb:
        raise ValueError("both results need a 'clickers' section (scripts/evaluate_iis.py JSONs)")
    out = {}
    for spec in [s for s in ca if s in cb]:
        oa = {o["name"]: o for o in ca[spec]["objects"]}
        ob = {o["name"]: o for o in cb[spec]["objects"]}
        names = [n for n in oa if n in ob]
        if not names:
            continue
        mc = min(ca[spec]["max_clicks"], cb[spec]["max_clicks"])
        va = [noc(np.array([r["ious"] for r in oa[n]["runs"]]), THRESHOLDS[name], mc).mean() for n in names]
        vb = [noc(np.array([r["ious"] for r in ob[n]["runs"]]), THRESHOLDS[name], mc).mean() for n in names]
        pairs = [(ra, rb) for n in names for ra, rb in zip(oa[n]["runs"], ob[n]["runs"]) if ra["seed"] == rb["seed"]]
        same = [bool(ra["clicks"]) and bool(rb["clicks"]) and list(ra["clicks"][0]) == list(rb["clicks"][0])
                for ra, rb in pairs]
        out[spec] = {key: paired_bootstrap(va, vb, n_boot=n_boot), "same_first_click": float(np.mean(same or [0.0])),
                     "n_objects": len(names), "max_clicks": mc}
    if not out:
        raise ValueError("the two results share no clicker and object")
    return out
