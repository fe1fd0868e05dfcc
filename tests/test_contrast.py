"""The boundary contrast term (featlib.contrast) against a cell-pair loop, its rules, and its place in the loss."""

import math

import pytest
import torch

from featlib.config import ConfigError, load_config
from featlib.contrast import boundary_contrast, cut_fractions, multi_stride_contrast
from featlib.loss import MultiStrideLoss, downsample_masks


def two_annotators(h=8, w=10):
    """Annotator A splits the image at column 4, annotator B at column 4 and at row 3 (right half)."""
    m = torch.zeros(1, 5, h, w, dtype=torch.bool)
    m[0, 0, :, :4] = True
    m[0, 1, :, 4:] = True
    m[0, 2, :, :4] = True
    m[0, 3, :3, 4:] = True
    m[0, 4, 3:, 4:] = True
    return m


def reference(x, masks, valid, margin, offset):
    """term_s by a loop over cell pairs (features x [B, D, h, w], masks bool [B, K, h, w])."""
    b, k, h, w = masks.shape
    num = den = 0.0
    for i in range(b):
        for y in range(h):
            for xx in range(w):
                for dy, dx in ((0, offset), (offset, 0)):
                    y2, x2 = y + dy, xx + dx
                    if y2 >= h or x2 >= w or (valid is not None and not (valid[i, y, xx] and valid[i, y2, x2])):
                        continue
                    a, bb = masks[i, :, y, xx], masks[i, :, y2, x2]
                    held = int((a | bb).sum())
                    c = int((a ^ bb).sum()) / held if held else 0.0
                    gap = float(torch.linalg.vector_norm(x[i, :, y, xx] - x[i, :, y2, x2])) / math.sqrt(x.shape[1])
                    num += c * max(margin - gap, 0.0) ** 2
                    den += c
    return num / max(den, 1e-6)


def test_cut_fractions_count_the_annotators_that_draw_a_border():
    ch, cv = cut_fractions(two_annotators())
    assert ch.shape == (1, 8, 9) and cv.shape == (1, 7, 10)
    assert torch.all(ch[0, :, 3] == 1)                    # both annotators cut between columns 3 and 4
    assert torch.all(ch[0, :, :3] == 0) and torch.all(ch[0, :, 4:] == 0)
    assert torch.allclose(cv[0, 2, 4:], torch.tensor(2 / 3))  # one of two cuts: 2k / (A + k) with k = 1, A = 2
    assert torch.all(cv[0, 2, :4] == 0) and cv[0, :2].sum() == 0 and cv[0, 3:].sum() == 0
    empty = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    assert all(c.sum() == 0 for c in cut_fractions(empty))  # no mask holds a pixel: nothing is cut


@pytest.mark.parametrize("channels, offset, with_valid", [(3, 1, False), (12, 1, True), (48, 2, False)])
def test_matches_the_cell_pair_loop(channels, offset, with_valid):
    g = torch.Generator().manual_seed(channels + offset)
    masks = two_annotators()
    b, k, h, w = masks.shape
    f = torch.rand(b, channels, h, w, generator=g)
    valid = torch.rand(b, h, w, generator=g) > 0.2 if with_valid else None
    got = boundary_contrast(f, masks, valid, margin=0.4, offset=offset)
    assert float(got) == pytest.approx(reference(f, masks, valid, 0.4, offset), rel=1e-5, abs=1e-7)


def test_zero_when_borders_are_wide_enough_and_gradients_only_at_borders():
    masks = two_annotators()
    f = torch.zeros(1, 3, 8, 10)
    f[:, :, :, 4:] = 1.0                                     # a jump of sqrt(3) / sqrt(3) = 1 > 0.4 at column 4
    f[:, :, 3:, 4:] = 0.5                                    # B's second border: a jump of 0.5 > 0.4
    assert float(boundary_contrast(f, masks)) == 0.0
    flat = (0.5 + 0.01 * torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))).requires_grad_()
    term = boundary_contrast(flat, masks)
    assert float(term.detach()) > 0
    term.backward()
    moved = flat.grad.abs().sum(1)[0] > 0
    assert moved[:, 3:5].any() and not moved[:, :3].any()      # A's and B's border at columns 3 | 4 ...
    assert moved[2, 5:].all() and not moved[:2, 5:].any() and not moved[4:, 5:].any()  # ... B's at rows 2 | 3


def test_min_cut_keeps_only_the_borders_most_masks_draw():
    masks = two_annotators()
    f = torch.zeros(1, 3, 8, 10)
    f[:, :, :, 4:] = 1.0                                     # the border both annotators draw is wide enough
    assert float(boundary_contrast(f, masks)) > 0            # B's own border (c = 2/3) is not
    assert float(boundary_contrast(f, masks, min_cut=0.7)) == 0.0
    assert float(boundary_contrast(f, masks, min_cut=0.6)) == pytest.approx(float(boundary_contrast(f, masks)))
    with pytest.raises(ValueError, match="min_cut in"):
        boundary_contrast(f, masks, min_cut=1.5)


def test_no_border_no_loss_and_bad_inputs_raise():
    one = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    assert float(boundary_contrast(torch.rand(1, 3, 6, 6), one)) == 0.0
    with pytest.raises(ValueError, match="on the same cells"):
        boundary_contrast(torch.rand(1, 3, 5, 6), one)
    with pytest.raises(ValueError, match="masks must be bool"):
        cut_fractions(one.float())
    with pytest.raises(ValueError, match="margin must be > 0"):
        boundary_contrast(torch.rand(1, 3, 6, 6), one, margin=0)
    with pytest.raises(ValueError, match="offset must be >= 1"):
        cut_fractions(one, offset=0)


def test_multi_stride_loss_adds_the_weighted_term():
    g = torch.Generator().manual_seed(0)
    masks = two_annotators(16, 16)
    feats = {s: torch.rand(1, 3 * s * s, 16 // s, 16 // s, generator=g) for s in (1, 2, 4)}
    cells = downsample_masks(masks, (1, 2, 4))
    plain = MultiStrideLoss(strides=(1, 2, 4))(feats, masks)
    with_term = MultiStrideLoss(strides=(1, 2, 4), contrast_weight=2.0)(feats, masks)
    term, parts = multi_stride_contrast(feats, cells, plain_weights(), margin=0.4)
    assert float(with_term.total) == pytest.approx(float(plain.total) + 2.0 * float(term), rel=1e-6)
    assert set(parts) == {1, 2, 4} and all(float(parts[s]) > 0 for s in (1, 2, 4))
    assert all(f"s{s}/contrast" in with_term.logs for s in (1, 2, 4)) and "s1/contrast" not in plain.logs
    keep = torch.tensor([[True, True, False, False, False]])  # annotator A only: B's borders draw nothing
    only_a, _ = multi_stride_contrast(feats, downsample_masks(masks[:, :2], (1, 2, 4)), plain_weights(), margin=0.4)
    gained = (MultiStrideLoss(strides=(1, 2, 4), contrast_weight=2.0)(feats, masks, mask_valid=keep).total
              - MultiStrideLoss(strides=(1, 2, 4))(feats, masks, mask_valid=keep).total)
    assert float(gained) == pytest.approx(2.0 * float(only_a), rel=1e-5)
    with pytest.raises(ValueError, match="contrast_weight must be >= 0"):
        MultiStrideLoss(contrast_weight=-1.0)
    with pytest.raises(ConfigError, match="contrast_weight must be >= 0"):
        load_config(None, ["contrast_weight=-0.5"])


def test_a_pattern_inside_every_cell_does_not_meet_it():
    """The degenerate answer to a per-pixel term: the same 2 x 2 pattern in every cell of stride 2 (every pixel
    differs from its neighbours) leaves neighbouring cells equal, so the cell term stays at margin^2."""
    masks = two_annotators(8, 8)
    pattern = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(4, 4).expand(1, 3, 8, 8)
    cells = torch.nn.functional.pixel_unshuffle(pattern, 2)         # [1, 12, 4, 4]: one vector for every cell
    members, _ = downsample_masks(masks, (2,))[2]
    assert float(boundary_contrast(cells, members)) == pytest.approx(0.4 ** 2, rel=1e-5)


def plain_weights():
    """MultiStrideLoss's default stride weights for strides 1, 2, 4 (proportional to s, summing to 1)."""
    return {1: 1 / 7, 2: 2 / 7, 4: 4 / 7}
