#!/usr/bin/env python
"""Batch inference: features, UCM and label maps at chosen granularities for a folder of images or tar shards.

    python scripts/segment_images.py --features bsds500-b0-all --input photos/ --output seg/ --levels 10,50,200 --png
    accelerate launch --multi_gpu --num_processes 8 scripts/segment_images.py --features CKPT --input 'shards/*.tar' \
        --output seg/

--input is a folder (every .jpg/.jpeg/.png/.bmp under it, subfolders included), a single image or .tar, or a glob
of images and/or .tar shards (``**`` spans subfolders). Per image, OUTPUT/<name>.npz holds ``ucm`` (float16
[2H+1, 2W+1], BSDS layout), ``labels_<n>`` (int32 [H, W]) for each level and, with --save-features,
``features_<s>`` (float16 unless --fp32); with --png also OUTPUT/<name>_<n>.png per level (the photo, segments
tinted, boundaries white).

<name> is the input's relative path without its extension, subfolders kept as subfolders of OUTPUT:
  folder input     photos/a/0001.jpg                              -> OUTPUT/a/0001.npz (relative to the folder)
  glob of images   'photos/*/*.jpg' matching photos/b/x.jpg       -> OUTPUT/b/x.npz (relative to the glob's
                                                                     folders before its first wildcard)
  tar shard        member images/sa_1.jpg of shards/sa_000000.tar -> OUTPUT/sa_000000/images/sa_1.npz
                                                                     (<tar stem>/<member path without extension>)
Nothing is ever overwritten. Inputs that would share an output name (x.jpg beside x.png, two tars with the same
stem from different folders, a loose image inside a tar's output folder) are refused at start, naming a few of
them, before anything is written. Tars are not opened for that check; inside a tar, a member whose name is
already taken by an earlier member (x.jpg after x.png) or whose path would leave OUTPUT (absolute, ``..``) is
skipped and listed instead.

Resumable: an image whose OUTPUT/<name>.npz exists is skipped, undecoded. Every file is written under a temporary
name and renamed into place (os.replace), overlays before the .npz, so an interrupted run never leaves a partial
output that looks finished. Each tar is read once, as one sequential stream (tarfile mode "r|*"): images are
decoded as they stream by, nothing is extracted to disk and no member is looked up by name (a finished shard is
still streamed through on a re-run, its images not decoded). With several processes (accelerate), rank r takes
tars r, r + world, r + 2 world, ... and a contiguous slice of the loose images; a rank with nothing to do just
waits for the others. Each rank shows its own progress bar (in bytes of its inputs when it has tars, so the ETA
holds whatever a shard holds; in images otherwise). Unreadable images, and unreadable or truncated tars, are
skipped and listed in OUTPUT/skipped_rank<k>.txt.

Command line (``featlib.cli``, shared with the evaluation scripts): ``--output`` defaults to
``outputs/segments/<features>`` (printed); bad arguments exit 2 with one line. Its processes are accelerate's
(``--num_processes``), not ``--workers``.

``--features`` takes any spec of the features registry (``featlib.features``): a model checkpoint, or a name such
as ``bsds500-b0-all`` (the shipped partitions model) or ``lab-smooth`` (the partitions' colour baseline).
The hierarchy is the features' default partitions (``Features.hierarchy``: grouping and settings from
featlib.features.DEFAULTS); ``--grouping mesh`` picks the fast grouping, whose stride combination ``--mesh-weights``
may set.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import tarfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
from accelerate import PartialState
from PIL import Image
from tqdm.auto import tqdm

from featlib import cli
from featlib import features as feature_registry
from featlib.viz import label_overlay

EXTS = (".jpg", ".jpeg", ".png", ".bmp")
SHOW_COLLISIONS = 5  # collisions quoted in the error


class Inputs(NamedTuple):
    files: list[tuple[str, str]]  # (output name, path) of loose images
    tars: list[str]  # tar shards; member m of t is named <tar stem of t>/<m without extension>


def tar_stem(path: str) -> str:
    return Path(path).name[: -len(".tar")]


def is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in EXTS


def _is_tar(name: str) -> bool:
    return name.lower().endswith(".tar")


def _fixed_prefix(pattern: str) -> str:
    """The leading folders of a glob pattern before its first wildcard: loose images are named relative to it."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if any(c in part for c in "*?["):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def _safe(name: str) -> bool:
    p = PurePosixPath(name)
    return bool(name) and not p.is_absolute() and ".." not in p.parts


def member_output_name(stem: str, member: str) -> str | None:
    """Output name of a tar member: <tar stem>/<member path without extension>; None if it would leave OUTPUT."""
    p = PurePosixPath(member)
    if not p.parts or p.is_absolute() or ".." in p.parts:
        return None
    return f"{stem}/{p.with_suffix('').as_posix()}"


def list_inputs(spec: str) -> Inputs:
    """Loose images (named by their path relative to the folder or the glob's fixed prefix) and tar shards.

    Raises ValueError, before anything is read or written, when two inputs would share an output name."""
    p = Path(spec)
    if p.is_dir():
        found = [str(f) for f in sorted(p.rglob("*")) if f.is_file() and f.suffix.lower() in EXTS]
        root = spec
    else:
        found = [spec] if p.is_file() else sorted(glob.glob(spec, recursive=True))
        root = str(p.parent) if p.is_file() else _fixed_prefix(spec)
    tars = [f for f in found if _is_tar(f) and os.path.isfile(f)]
    files = [(Path(os.path.relpath(f, root)).with_suffix("").as_posix(), f) for f in found
             if not _is_tar(f) and is_image(f) and os.path.isfile(f)]
    problems = [f"{path} would be written outside OUTPUT as {name!r}" for name, path in files if not _safe(name)]
    by_name: dict[str, list[str]] = defaultdict(list)
    for name, path in files:
        by_name[name].append(path)
    by_stem: dict[str, list[str]] = defaultdict(list)
    for t in tars:
        by_stem[tar_stem(t)].append(t)
    problems += [f"{name!r} <- {', '.join(paths)}" for name, paths in by_name.items() if len(paths) > 1]
    problems += [f"{stem + '/'!r} (tar stem) <- {', '.join(paths)}" for stem, paths in by_stem.items()
                 if len(paths) > 1]
    problems += [f"{name!r} <- {path} lies in the output folder of {', '.join(by_stem[name.split('/')[0]])}"
                 for name, path in files if "/" in name and name.split("/")[0] in by_stem]
    if problems:
        shown = "\n  ".join(problems[:SHOW_COLLISIONS])
        more = f"\n  ... and {len(problems) - SHOW_COLLISIONS} more" if len(problems) > SHOW_COLLISIONS else ""
        raise ValueError(f"{len(problems)} output name collision(s) in --input {spec}; outputs are named by relative "
                         f"path without extension (tars: <tar stem>/<member>), and none may overwrite another. "
                         f"Nothing was written. Rename or move these inputs, or run them into separate --output "
                         f"folders:\n  {shown}{more}")
    return Inputs(files, tars)


def split_for_rank(inputs: Inputs, rank: int, world: int) -> Inputs:
    """Rank's share: tars rank, rank + world, ...; a contiguous slice of the loose images (as
    PartialState.split_between_processes cuts them). Either may be empty."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in [0, {world}) (world size {world})")
    per, extra = divmod(len(inputs.files), world)
    start = rank * per + min(rank, extra)
    return Inputs(inputs.files[start:start + per + (rank < extra)], inputs.tars[rank::world])


def decode(data: bytes | str) -> np.ndarray:
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(src) as im:
        return np.asarray(im.convert("RGB"))


def file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # vanished since listed: it is reported as unreadable, the bar just does not count it
        return 0


def done(out: Path, name: str) -> bool:
    return (out / f"{name}.npz").exists()


def iter_images(mine: Inputs, out: Path, skipped: list[str], progress: Callable[[int], None]
                ) -> Iterator[tuple[str, np.ndarray]]:
    """(output name, RGB image) of each image still to do; finished outputs are skipped undecoded, unreadable
    inputs appended to ``skipped``. ``progress(nbytes)`` is called once an input is done with (after the consumer
    processed it). Each tar is opened once and read front to back as a stream."""
    for name, path in mine.files:
        if not done(out, name):
            try:
                img = decode(path)
            except Exception as e:  # unreadable image: list it, keep going
                skipped.append(f"{path}\t{type(e).__name__}: {e}")
            else:
                yield name, img
        progress(file_size(path))
    for path in mine.tars:
        stem, size, pos, seen = tar_stem(path), file_size(path), 0, {}
        try:
            with tarfile.open(path, mode="r|*") as tar:
                for m in tar:
                    progress(m.offset - pos)  # the previous member is finished with
                    pos = m.offset
                    if not (m.isfile() and is_image(m.name)):
                        continue
                    loc, name = f"{path}::{m.name}", member_output_name(stem, m.name)
                    if name is None:
                        skipped.append(f"{loc}\tmember path would be written outside OUTPUT")
                        continue
                    if name in seen:
                        skipped.append(f"{loc}\toutput name {name!r} already taken by member {seen[name]} of this "
                                       f"tar; not overwritten")
                        continue
                    seen[name] = m.name
                    if done(out, name):
                        continue
                    try:
                        img = decode(tar.extractfile(m).read())
                    except tarfile.TarError:
                        raise
                    except Exception as e:
                        skipped.append(f"{loc}\t{type(e).__name__}: {e}")
                        continue
                    yield name, img
        except (tarfile.TarError, OSError, EOFError) as e:  # truncated or corrupt shard: list it, keep going
            skipped.append(f"{path}\t{type(e).__name__}: {e} (the rest of this tar was not read)")
        progress(size - pos)


def segment(img: np.ndarray, features, levels: list[int], mesh_weights: str | None, save_features: bool,
            fp32: bool, grouping: str | None = None, max_side: int | None = None) -> dict[str, np.ndarray]:
    feats = features(img)
    h = features.hierarchy(img, grouping, features=feats, mesh_weights=mesh_weights, max_side=max_side)
    arrays = {}
    if save_features:
        arrays.update({f"features_{s}": f.astype(np.float32 if fp32 else np.float16) for s, f in feats.items()})
    arrays["ucm"] = h.ucm().astype(np.float16)
    arrays.update({f"labels_{n}": h.partition(n_segments=n) for n in levels})
    return arrays


def write_outputs(out: Path, name: str, img: np.ndarray, arrays: dict[str, np.ndarray], levels: list[int],
                  png: bool) -> None:
    """OUTPUT/<name>.npz (and overlays), each under a temporary name then os.replace'd into place."""
    target = out / f"{name}.npz"
    target.parent.mkdir(parents=True, exist_ok=True)
    if png:  # before the .npz: the .npz's presence is what marks an image done
        for n in levels:
            overlay = Image.fromarray((label_overlay(img, arrays[f"labels_{n}"]) * 255).round().astype(np.uint8))
            tmp_png = target.parent / f".{target.stem}_{n}.tmp.png"
            overlay.save(tmp_png)
            os.replace(tmp_png, target.parent / f"{target.stem}_{n}.png")
    tmp = target.parent / f".{target.stem}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, target)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features", "--checkpoint", dest="features", required=True,
                   help="model.pt from training, or a registered name (featlib.features.names(), e.g. lab-smooth)")
    p.add_argument("--input", required=True, help="folder of images, an image, a .tar, or a glob of images/tars")
    p.add_argument("--output", default=None,
                   help="output folder (default outputs/segments/<features>; the run prints it). Existing per-image "
                        "outputs are kept and skipped (resume), never rewritten")
    p.add_argument("--levels", default="10,50,200", help="segment counts of the saved label maps")
    p.add_argument("--save-features", action="store_true")
    p.add_argument("--fp32", action="store_true", help="save features as float32 (default float16)")
    p.add_argument("--png", action="store_true", help="also write a viewable overlay PNG per image and level")
    p.add_argument("--grouping", choices=feature_registry.GROUPINGS, default=None,
                   help="gradients (the default partitions) or mesh (the fast grouping); default: the features'")
    p.add_argument("--mesh-weights", default=None,
                   help="mesh grouping: stride combination: equal, 1/s, finest, 'finest two' or JSON {stride: weight} "
                        "(default: the features' own choice, featlib.features.DEFAULTS)")
    p.add_argument("--max-side", type=int, default=None,
                   help="the boundary map's working resolution in px (longer side): larger photos get their map at "
                        "that size, the hierarchy at full size; 0: every image at full size (default: the "
                        "features', featlib.features.DEFAULTS: 512 for every source's gradients grouping; "
                        "docs/PARTITIONS.md 'Large photos')")
    a = p.parse_args(argv)
    try:
        levels = [int(v) for v in a.levels.split(",") if v]
        if not levels or min(levels) < 1:
            raise ValueError(f"--levels must be segment counts >= 1, got {a.levels!r}")
    except ValueError as e:
        return cli.fail(str(e) if "--levels" in str(e) else f"--levels must be comma-separated integers: {a.levels!r}")
    try:
        inputs = list_inputs(a.input)  # every rank lists (cheap: tars are not opened) and refuses alike
    except ValueError as e:
        return cli.fail(str(e))
    if not inputs.files and not inputs.tars:
        return cli.fail(f"no images or .tar shards found at {a.input}")
    state = PartialState(cpu=os.environ.get("ACCELERATE_USE_CPU") == "true")
    try:
        features = feature_registry.load(a.features, device=state.device)
        features.hierarchy_settings(a.grouping, mesh_weights=a.mesh_weights, max_side=a.max_side)  # fails here
    except ValueError as e:
        return cli.fail(str(e))
    out = Path(a.output) if a.output is not None else Path("outputs/segments") / cli.slug(a.features)
    out.mkdir(parents=True, exist_ok=True)
    rank = state.process_index
    if rank == 0:
        print(f"writing to {out}")
    mine = split_for_rank(inputs, rank, state.num_processes)
    if not (mine.files or mine.tars):
        print(f"rank {rank}: nothing to do ({len(inputs.tars)} tar(s) and {len(inputs.files)} loose image(s) over "
              f"{state.num_processes} processes)")
    by_bytes = bool(mine.tars)  # a shard's image count is only known once it is read: count its bytes
    total = (sum(file_size(t) for t in mine.tars) + sum(file_size(f) for _, f in mine.files)
             if by_bytes else len(mine.files))
    bar = tqdm(total=total, desc=f"rank {rank}", position=rank, unit="B" if by_bytes else "img",
               unit_scale=by_bytes, unit_divisor=1024 if by_bytes else 1000, dynamic_ncols=True,
               disable=not total)
    skipped: list[str] = []
    new = 0
    for name, img in iter_images(mine, out, skipped, lambda n: bar.update(n if by_bytes else 1)):
        write_outputs(out, name, img, segment(img, features, levels, a.mesh_weights, a.save_features, a.fp32,
                                                    a.grouping, a.max_side),
                      levels, a.png)
        new += 1
        bar.set_postfix_str(f"{new} written, {len(skipped)} skipped", refresh=False)
    bar.close()
    if skipped:
        (out / f"skipped_rank{rank}.txt").write_text("\n".join(skipped) + "\n")
        print(f"rank {rank}: skipped {len(skipped)} input(s) (unreadable, or a tar member whose name is taken), "
              f"listed with the reason in {out / f'skipped_rank{rank}.txt'}")
    print(f"rank {rank}: wrote {new} image(s) under {out}")
    state.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
