"""Human grouping as the click graph's cues: how far better features could take click segmentation (a diagnostic).

    features, kw = oracle_cues(segmentation, f(image), ("map", "partition", "features"))
    seg = ClickSegmenter(features, image, **{**f.click_kwargs(), **kw})
    # scripts/evaluate_iis.py --dataset bsds500 ... --oracle-annotator 1 [--oracle-cues map,partition,features]

``segmentation`` (int [H, W]) is one person's partition of the image: in the evaluation a BSDS500 annotator *other*
than the one whose segment is the object (annotator 0), so the cues group as a person would without knowing the
object. Each cue replaces or extends one thing the click graph reads (docs/CLICKS.md "Robustness", "What human
grouping buys"):

- ``map``: the boundary map (``ClickSegmenter(boundary_map=...)``) becomes the segmentation's borders, p = 1 on each
  pixel whose right or lower neighbour lies in another segment, else 0 (one pixel per border, as the graph's pixel
  edges take the larger p of their two pixels).
- ``partition``: every cut of the hierarchy that ``lone_click_segments`` / ``seed_segments`` read is the segmentation
  itself (``FixedPartition``): a lone first click stands for its person-drawn segment. No effect when neither is on.
- ``features``: ``EMBED_DIM`` channels appended to every stride's features: one random unit vector per segment (fixed
  seed) times ``EMBED_SCALE``, sampled at the stride. Two segments' vectors lie ~sqrt(2) x 0.2 = 0.28 apart, ~1.6
  times the median distance between neighbouring BSDS500 segments' mean Lab colours in featlib's units (0.18;
  quartiles 0.10 / 0.32; annotator 0 of the first 20 val images), so the unary and the contrast weights both see
  the person's grouping while colour still orders pixels within a segment (0.2 was set once, not tuned).

The cues are an upper bound of a particular kind: grouping as good as a second person's, from the click graph
that the shipped features use. They are not a method (the segmentation is ground truth).
"""

from __future__ import annotations

import numpy as np

from featlib.metrics import boundaries

CUES = ("map", "partition", "features")
EMBED_DIM = 8
EMBED_SCALE = 0.2


class FixedPartition:
    """A 'hierarchy' whose every cut is one segmentation: ``partition(n_segments=n)`` returns it for any n."""

    def __init__(self, segmentation: np.ndarray):
        self.segmentation = _check_segmentation(segmentation)

    def partition(self, n_segments: int | None = None, **_) -> np.ndarray:
        return self.segmentation


def _check_segmentation(segmentation) -> np.ndarray:
    s = np.asarray(segmentation)
    if s.ndim != 2 or not np.issubdtype(s.dtype, np.integer):
        raise ValueError(f"segmentation must be an int [H, W] label map, got {s.dtype} {s.shape}")
    if s.size and s.min() < 0:
        raise ValueError(f"segmentation labels must be >= 0, got {int(s.min())}")
    return s


def segment_borders(segmentation: np.ndarray) -> np.ndarray:
    """float32 [H, W]: 1 on each pixel whose right or lower neighbour has another label (``metrics.boundaries``)."""
    return boundaries(_check_segmentation(segmentation)).astype(np.float32)  # metrics' one-pixel-thin boundary


def segment_embedding(segmentation: np.ndarray, dim: int = EMBED_DIM, scale: float = EMBED_SCALE,
                      seed: int = 0) -> np.ndarray:
    """float32 [dim, H, W]: one random unit vector per label (``numpy.random.default_rng(seed)``) times ``scale``."""
    s = _check_segmentation(segmentation)
    if dim < 1 or not scale > 0:
        raise ValueError(f"dim must be >= 1 and scale > 0, got {dim}, {scale}")
    v = np.random.default_rng(seed).normal(size=(int(s.max(initial=0)) + 1, dim)).astype(np.float32)
    v *= scale / np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(np.moveaxis(v[s], -1, 0))


def oracle_cues(segmentation: np.ndarray, features, cues=CUES) -> tuple[dict, dict]:
    """(features, segmenter keywords) with ``cues`` (a subset of CUES) taken from ``segmentation`` int [H, W].

    ``features``: as ``ClickSegmenter`` takes them, ``{stride: [C, h, w]}`` (h = ceil(H / stride)) or one [C, H, W]
    map; returned as a dict of float32 arrays, with the embedding appended when "features" is asked. Keywords:
    ``boundary_map`` ("map") and ``hierarchy`` ("partition"), to override the source's own.
    """
    s = _check_segmentation(segmentation)
    unknown = set(cues) - set(CUES)
    if unknown:
        raise ValueError(f"unknown oracle cues {sorted(unknown)}; expected a subset of {list(CUES)}")
    feats = features if isinstance(features, dict) else {1: features}
    feats = {int(k): np.asarray(v, np.float32) for k, v in feats.items()}
    h, w = s.shape
    for st, f in feats.items():
        want = (-(-h // st), -(-w // st))
        if f.ndim != 3 or f.shape[1:] != want:
            raise ValueError(f"stride {st} features {f.shape} do not fit a {h} x {w} segmentation (want [C, {want[0]}, "
                             f"{want[1]}])")
    kw: dict = {}
    if "map" in cues:
        kw["boundary_map"] = segment_borders(s)
    if "partition" in cues:
        kw["hierarchy"] = FixedPartition(s)
    if "features" in cues:
        e = segment_embedding(s)
        feats = {st: np.concatenate([f, e[:, ::st, ::st]]) for st, f in feats.items()}
    return feats, kw
