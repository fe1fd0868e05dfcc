"""Running the boundary benchmark over many images: parallel over images AND maps, cached by content, resumable.

    from featlib import boundary_runs as br
    # stage 1 (one job per image, any executor): {"id", "gt": br.gt_info(boundaries),
    #                                             "<sweep>": {"boundary_work": br.work(boundaries.ucm_maps(...))}}
    # stage 2 (one job per distinct thinned map): match_fn(job, packed_map, shape, matcher) -> (counts [4], seconds)
    with br.InProcess() as ex:   # or a ProcessPoolExecutor
        for result in br.run_images(ex, jobs, image_fn, match_fn, "bsds", br.CountsCache(path), in_flight=4):
            ...                  # each "boundary_work" replaced by {"counts": [T, 4], "seconds"}
    done = br.resume(per_image_jsonl, settings, overwrite)   # {image id: result} of an interrupted run

Why it is built this way (``scripts/evaluate_partitions.py``; docs/PARTITIONS.md has the timings):
- correspondPixels is ~all of the time (~0.1-1 s per map and annotator on BSDS500; a hierarchy's 48 thresholds give
  ~29 distinct maps per image), so each distinct map is its own job: the workers stay busy to the last image.
- The matcher is seeded (``featlib.boundaries.MATCH_SEED``), so the counts of (annotators' boundaries, thinned map,
  matcher settings) are a function of that content: ``CountsCache`` keys them by sha1s and any run, method or setting
  that draws the same map on the same image reuses them (a JSONL, appended as counts arrive, never rewritten).
- A run's per-image results go to a JSONL (one settings line, then one line per finished image): ``resume`` hands
  back what an interrupted run of the same settings finished.
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

import numpy as np

from featlib import boundaries


def pack(bmap: np.ndarray) -> bytes:
    """bool [H, W] -> its bits (picklable, 1/8 of the bytes)."""
    return np.packbits(np.asarray(bmap, dtype=bool)).tobytes()


def unpack(packed: bytes, shape) -> np.ndarray:
    """``pack``'s bits and the map's (H, W) -> bool [H, W]."""
    h, w = shape
    return np.unpackbits(np.frombuffer(packed, np.uint8), count=h * w).reshape(h, w).astype(bool)


def work(maps_index, seconds: float = 0.0) -> dict:
    """One sweep's matching work: (distinct maps, index [T]) from ``boundaries.ucm_maps`` / ``edge_maps`` /
    ``partition_maps`` -> {"maps": packed maps, "index": [T], "seconds": the time it took to make them}."""
    maps, index = maps_index
    return {"maps": [pack(m) for m in maps], "index": np.asarray(index).tolist(), "seconds": float(seconds)}


def gt_info(gt_boundaries) -> dict:
    """{"shape", "sum_r": the annotators' boundary pixels (an empty map's counts are (0, sum_r, 0, 0)), "key": a
    content key of every annotator's boundaries} of one image (bool [H, W] per annotator)."""
    gts = [np.asarray(g, dtype=bool) for g in gt_boundaries]
    if not gts:
        raise ValueError("an image needs at least one annotator's boundaries")
    return {"shape": list(gts[0].shape), "sum_r": int(sum(g.sum() for g in gts)),
            "key": boundaries.map_key(np.concatenate(gts))}


class CountsCache:
    """Boundary counts by content (module docstring): {key: [cntR, sumR, cntP, sumP]}, kept in a JSONL of
    {"key", "counts"} lines (``path=None``: in memory only). Lines cut short by an interrupted run are skipped."""

    def __init__(self, path: Path | str | None = None):
        self.path, self.table = (Path(path) if path is not None else None), {}
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.table[entry["key"]] = [int(c) for c in entry["counts"]]
                except (ValueError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(matcher: str, gt_key: str, packed: bytes, shape) -> str:
        """The content key of one map's counts: matcher settings, the annotators' boundaries, the map."""
        return (f"{matcher}:{boundaries.MATCH_SEED}:{boundaries.MAX_DIST}:{gt_key}:"
                f"{boundaries.map_key(unpack(packed, shape))}")

    def get(self, key: str):
        return self.table.get(key)

    def add(self, key: str, counts) -> None:
        self.table[key] = [int(c) for c in counts]
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps({"key": key, "counts": self.table[key]}) + "\n")


class InProcess:
    """An executor that runs each job when it is submitted, in this process (``--workers 1``)."""

    def submit(self, fn, *args) -> Future:
        f = Future()
        try:
            f.set_result(fn(*args))
        except Exception as e:  # noqa: BLE001 (re-raised by f.result(), as a process pool would)
            f.set_exception(e)
        return f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _parts(result: dict) -> list[tuple[str, dict]]:
    return [(name, v["boundary_work"]) for name, v in result.items()
            if isinstance(v, dict) and "boundary_work" in v]


def run_images(executor, jobs: list, image_fn, match_fn, matcher: str, cache: CountsCache, in_flight: int,
               id_of=lambda job: job[2]):
    """Yield each image's finished result as soon as its stage 1 and the counts of every map it needs are in.

    ``image_fn(job)``: stage 1 -> a dict with "id", "gt" (``gt_info``) and, per boundary sweep, {"boundary_work":
    ``work(...)``}; ``match_fn(job, packed, shape, matcher)`` -> (counts [4], seconds). In the yielded result every
    "boundary_work" is replaced by "boundary": {"counts": [T, 4], "seconds": making + matching its maps} and "gt" is
    dropped. A map cached, or already wanted by an image in flight, is not matched again; an empty one needs no
    matching. At most ``in_flight`` images are open at once (so results stream out in about job order).
    """
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    todo, futures, open_, waiting = deque(jobs), {}, {}, {}

    def start():
        while todo and len(open_) < in_flight:
            job = todo.popleft()
            open_[id_of(job)] = None
            futures[executor.submit(image_fn, job)] = ("image", job)

    def resolve(state, key, counts, seconds=0.0):
        for part in state["parts"]:
            if key in part["need"]:
                part["need"].discard(key)
                part["table"][key] = counts
                part["seconds"] += seconds
                seconds = 0.0  # a map two sweeps share is timed once

    def register(job, result):
        state = open_[id_of(job)] = {"result": result, "parts": []}
        gt = result.get("gt")
        if _parts(result) and gt is None:
            raise ValueError(f"stage 1 of {id_of(job)} has boundary work but no 'gt' (boundary_runs.gt_info)")
        for name, w in _parts(result):
            keys = [CountsCache.key(matcher, gt["key"], m, gt["shape"]) for m in w["maps"]]
            part = {"name": name, "keys": keys, "index": w["index"], "need": set(keys), "table": {},
                    "seconds": w["seconds"]}
            state["parts"].append(part)
            for key, packed in zip(keys, w["maps"]):
                if not any(packed):  # nothing drawn: nothing to match
                    resolve(state, key, [0, gt["sum_r"], 0, 0])
                elif cache.get(key) is not None:
                    resolve(state, key, cache.get(key))
                elif key not in waiting:
                    waiting[key] = [id_of(job)]
                    futures[executor.submit(match_fn, job, packed, gt["shape"], matcher)] = ("map", key)
                else:
                    waiting[key].append(id_of(job))

    start()
    while futures:
        done = wait(list(futures), return_when=FIRST_COMPLETED)[0]
        # in submission order, not the set's (address-dependent) order: a shared map's time goes to the image that
        # asked first, the same on every run
        for fut in [f for f in futures if f in done]:
            kind, payload = futures.pop(fut)
            if kind == "image":
                register(payload, fut.result())
            else:
                counts, seconds = fut.result()
                cache.add(payload, counts)
                for image_id in waiting.pop(payload):
                    resolve(open_[image_id], payload, list(counts), seconds)
                    seconds = 0.0
            for image_id in [i for i, s in open_.items() if s and not any(p["need"] for p in s["parts"])]:
                state = open_.pop(image_id)
                result = state["result"]
                for part in state["parts"]:
                    rows = [part["table"][k] for k in part["keys"]]
                    result[part["name"]].pop("boundary_work")
                    result[part["name"]]["boundary"] = {"counts": [rows[i] for i in part["index"]],
                                                        "seconds": part["seconds"]}
                result.pop("gt", None)
                yield result
        start()


def resume(path: Path | str, settings: dict, overwrite: bool = False) -> dict:
    """{image id: result} already in the per-image JSONL ``path`` (a settings line, then one JSON line per image)
    when its settings equal ``settings``; a new (or, with ``overwrite``, a replaced) file gets the settings line.
    A file of other settings without ``overwrite`` is a ValueError; a last line cut short is dropped.
    ``overwrite`` always starts afresh, even over results of the same settings: the settings name the options, not
    the code or a network file's contents, so a run asked to replace its results must not hand back old ones."""
    path = Path(path)
    lines = path.read_text().splitlines() if path.is_file() else []
    try:
        same = bool(lines) and json.loads(lines[0]).get("settings") == json.loads(json.dumps(settings))
    except (ValueError, AttributeError):
        same = False
    if path.is_file() and not same and not overwrite:
        raise ValueError(f"{path} holds per-image results of other settings; remove it, choose another --output "
                         "or pass --overwrite")
    if not same or overwrite:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"settings": settings}) + "\n")
        return {}
    if not path.read_text().endswith("\n"):
        with path.open("a") as f:  # a line cut short stays on its own, so the next result starts a line
            f.write("\n")
    done = {}
    for line in lines[1:]:
        try:
            r = json.loads(line)
            done[r["id"]] = r
        except (ValueError, KeyError, TypeError):
            continue
    return done
