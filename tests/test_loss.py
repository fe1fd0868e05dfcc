"""The discriminative loss against a plain per-mask loop (the paper's formulas), edge cases, multi-stride rules."""

import math

import pytest
import torch

import featlib.pull as pull_module
from featlib.loss import (
    MultiStrideLoss,
    default_margins,
    discriminative_loss,
    downsample_masks,
    feature_spread,
    pair_relations,
)
from featlib.pull import _member_index


def reference_loss(x, masks, valid, dv, dd, alpha=1.0, beta=1.0, gamma=0.001, allowed=None, weight=None,
                   norm="allowed"):
    """Straight loops over images, masks, pixels and pairs (float64); ``norm``: the push's divisor, the allowed pairs
    or C (C - 1)."""
    totals, pulls, pushes, regs = [], [], [], []
    for b in range(x.shape[0]):
        mus, pull = [], 0.0
        ks = []
        for k in range(masks.shape[1]):
            m = masks[b, k] & (weight[b] > 0 if weight is not None else True)
            if (valid is not None and not valid[b, k]) or not m.any():
                continue
            w = weight[b][m] if weight is not None else torch.ones(int(m.sum()), dtype=x.dtype)
            pts = x[b][:, m].T  # [N_k, C]
            mu = (pts * w[:, None]).sum(0) / w.sum()
            mus.append(mu)
            ks.append(k)
            terms = [w[i] * torch.clamp(torch.linalg.norm(mu - pts[i]) - dv, min=0) ** 2 for i in range(len(pts))]
            pull = pull + sum(terms) / w.sum()
        c = len(mus)
        if c == 0:
            continue
        push, pairs = 0.0, 0
        for ia in range(c):
            for ib in range(c):
                if ia != ib and (allowed is None or allowed[b, ks[ia], ks[ib]]):
                    push = push + torch.clamp(2 * dd - torch.linalg.norm(mus[ia] - mus[ib]), min=0) ** 2
                    pairs += 1
        divisor = c * (c - 1) if norm == "all_pairs" else pairs
        push = push / divisor if divisor else torch.zeros((), dtype=x.dtype)
        reg = sum(torch.linalg.norm(m) for m in mus) / c
        pull = pull / c
        pulls.append(pull), pushes.append(push), regs.append(reg)
        totals.append(alpha * pull + beta * push + gamma * reg)
    if not totals:
        return (torch.zeros((), dtype=x.dtype),) * 4
    return tuple(torch.stack([torch.as_tensor(v, dtype=x.dtype) for v in t]).mean()
                 for t in (totals, pulls, pushes, regs))


def random_case(seed, b=2, k=4, c=3, h=6, w=7, disjoint=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    if disjoint:
        lab = torch.randint(-1, k, (b, h, w), generator=g)
        masks = torch.stack([lab == i for i in range(k)], 1)
    else:
        masks = torch.rand(b, k, h, w, generator=g) < 0.4
    valid = torch.rand(b, k, generator=g) < 0.85
    return x, masks, valid


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("disjoint", [True, False])
def test_matches_reference_loop(seed, disjoint):
    x, masks, valid = random_case(seed, disjoint=disjoint)
    out = discriminative_loss(x, masks, valid, delta_v=0.1, delta_d=0.6, gamma=0.01)
    ref = reference_loss(x, masks, valid, 0.1, 0.6, gamma=0.01)
    for got, want in zip((out.total, out.pull, out.push, out.reg), ref):
        assert torch.allclose(got, want, atol=1e-10), (got, want)


@pytest.mark.parametrize("norm", ["allowed", "all_pairs"])
@pytest.mark.parametrize("mode", ["disjoint", "adjacent"])
@pytest.mark.parametrize("overlapping", [True, False])
def test_pair_modes_match_reference_with_same_pairs(mode, norm, overlapping):
    x, masks, valid = random_case(5, k=5, h=12, w=12, disjoint=not overlapping)
    if not overlapping:  # a sixth mask holding two others: pairs that "disjoint" must not push
        masks = torch.cat([masks, masks[:, :1] | masks[:, 1:2]], 1)
        valid = torch.cat([valid, torch.ones_like(valid[:, :1])], 1)
    allowed = pair_relations(masks, mode, overlap_threshold=0.3, adjacency_radius=1)
    assert overlapping or allowed.any()
    out = discriminative_loss(x, masks, valid, delta_v=0.05, delta_d=0.7, push_pairs=mode, overlap_threshold=0.3,
                              adjacency_radius=1, push_norm=norm)
    ref = reference_loss(x, masks, valid, 0.05, 0.7, allowed=allowed, norm=norm)
    assert torch.allclose(out.total, ref[0], atol=1e-10)
    assert torch.allclose(out.push, ref[2], atol=1e-10)


def test_push_is_normalised_by_the_pairs_it_may_use():
    """Masks the mode never pushes leave the push's strength unchanged ("allowed"); the old rule diluted it."""
    x, masks, valid = random_case(2, b=1, k=3, h=12, w=12)
    valid[:] = True
    kw = dict(delta_v=0.05, delta_d=0.7, push_pairs="disjoint")
    base = discriminative_loss(x, masks, valid, **kw)
    # a mask over the whole image overlaps every other: "disjoint" pushes none of its pairs
    more = torch.cat([masks, torch.ones_like(masks[:, :1])], 1)
    grown = discriminative_loss(x, more, torch.ones(1, 4, dtype=torch.bool), **kw)
    assert base.push > 0 and torch.allclose(grown.push, base.push, atol=1e-12)
    old = discriminative_loss(x, more, torch.ones(1, 4, dtype=torch.bool), **kw, push_norm="all_pairs")
    assert torch.allclose(old.push, base.push * (3 * 2) / (4 * 3), atol=1e-12)
    with pytest.raises(ValueError, match="push_norm"):
        discriminative_loss(x, masks, valid, **kw, push_norm="pairs")


def test_pair_relations_semantics():
    m = torch.zeros(1, 4, 10, 10, dtype=torch.bool)
    m[0, 0, :, :5] = True        # left half (object)
    m[0, 1, :3, :3] = True       # a part of the left half
    m[0, 2, :, 5:] = True        # right half, touching the left
    m[0, 3, 9:, 9:] = True       # corner of the right half... nested in 2
    m[0, 2, 9, 9] = True
    d = pair_relations(m, "disjoint")[0]
    assert not d[0, 1] and not d[1, 0]  # object and its part are never pushed
    assert d[0, 2] and d[1, 2]
    assert not d[2, 3]
    a = pair_relations(m, "adjacent", adjacency_radius=1)[0]
    assert a[0, 2]               # touching
    assert not a[1, 2]           # part 1 is 2 columns away from mask 2
    assert not a.diagonal().any() and torch.equal(a, a.T)
    assert pair_relations(m, "all") is None
    with pytest.raises(ValueError, match="push_pairs"):
        pair_relations(m, "nearby")


def test_pixel_weight_matches_reference():
    x, masks, valid = random_case(7)
    weight = torch.rand(2, 6, 7, dtype=torch.float64) * (torch.rand(2, 6, 7) > 0.3)
    out = discriminative_loss(x, masks, valid, delta_v=0.1, delta_d=0.5, pixel_weight=weight)
    ref = reference_loss(x, masks, valid, 0.1, 0.5, weight=weight)
    assert torch.allclose(out.total, ref[0], atol=1e-10)


def test_gradients_match_reference_and_gradcheck():
    x, masks, valid = random_case(3, b=1, k=3, h=4, w=5)
    x1 = x.clone().requires_grad_()
    discriminative_loss(x1, masks, valid, delta_v=0.05, delta_d=0.6).total.backward()
    x2 = x.clone().requires_grad_()
    reference_loss(x2, masks, valid, 0.05, 0.6)[0].backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-10)
    f = lambda t: discriminative_loss(t, masks, valid, delta_v=0.05, delta_d=0.6, push_pairs="disjoint").total  # noqa
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", ["no_masks", "k0", "one_mask", "identical_means", "all_ignored", "empty_masks"])
def test_degenerate_inputs_are_finite_with_graph(case):
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    masks = torch.zeros(2, 3, 5, 5, dtype=torch.bool)
    valid, weight = None, None
    if case == "k0":
        masks = masks[:, :0]
    elif case == "one_mask":
        masks[0, 0, :2] = True
    elif case == "identical_means":
        x = torch.full((2, 3, 5, 5), 0.5, requires_grad=True)
        masks[:, 0, :2], masks[:, 1, 3:] = True, True
    elif case == "all_ignored":
        masks[:, 0, :2] = True
        weight = torch.zeros(2, 5, 5)
    elif case == "empty_masks":
        masks[0, 1, 0, 0] = True
        valid = torch.tensor([[True, False, True], [True, True, True]])
    out = discriminative_loss(x, masks, valid, delta_v=0.1, delta_d=0.5, pixel_weight=weight)
    out.total.backward()
    assert torch.isfinite(out.total) and torch.isfinite(x.grad).all()
    if case in ("no_masks", "k0", "all_ignored", "empty_masks"):
        assert out.total.item() == 0.0
    if case == "identical_means":  # coincident means push at full strength, with a finite (zero) gradient
        assert out.push.item() == pytest.approx(1.0, abs=1e-5)


def test_bf16_autocast_computes_in_float32():
    x = torch.rand(1, 3, 8, 8)
    masks = torch.zeros(1, 2, 8, 8, dtype=torch.bool)
    masks[0, 0, :4], masks[0, 1, 4:] = True, True
    ref = discriminative_loss(x, masks, delta_v=0.1, delta_d=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = discriminative_loss(x, masks, delta_v=0.1, delta_d=0.5)
    assert out.total.dtype == torch.float32
    assert torch.allclose(out.total, ref.total)


def test_bad_shapes_raise():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="bool"):
        discriminative_loss(x, torch.zeros(1, 2, 8, 8), delta_v=0.1, delta_d=0.5)
    with pytest.raises(ValueError, match="do not match"):
        discriminative_loss(x, torch.zeros(1, 2, 8, 9, dtype=torch.bool), delta_v=0.1, delta_d=0.5)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        discriminative_loss(x[0], torch.zeros(1, 2, 8, 8, dtype=torch.bool), delta_v=0.1, delta_d=0.5)


# ---------------------------------------------------------------- multi-stride


def test_downsample_rule_matches_avg_pool():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 5, 37, 45, generator=g) < 0.5
    masks[:, :, 10:30, 5:25] = True
    down = downsample_masks(masks, (1, 2, 4, 8, 16))
    for s, (members, cell_valid) in down.items():
        h, w = math.ceil(37 / s), math.ceil(45 / s)
        assert members.shape == (2, 5, h, w) and cell_valid.all()
        frac = torch.nn.functional.avg_pool2d(masks.float(), s, ceil_mode=True)  # / in-image pixels
        assert torch.equal(members, frac >= 0.5), s


def test_valid_pixels_and_min_cells():
    masks = torch.zeros(1, 2, 32, 32, dtype=torch.bool)
    masks[0, 0, :16] = True
    masks[0, 1, 16:, :8] = True  # 16 x 8 pixels: 1 cell at /8... 0.5 of one /16 cell
    valid = torch.ones(1, 32, 32, dtype=torch.bool)
    valid[0, :, 24:] = False
    down = downsample_masks(masks, (8, 16), valid)
    assert down[8][1].sum() == 12  # 4 x 3 cells valid
    loss = MultiStrideLoss(strides=(8, 16), min_cells=2)
    feats = {8: torch.rand(1, 192, 4, 4), 16: torch.rand(1, 768, 2, 2)}
    out = loss(feats, masks, valid_pixels=valid)
    assert out.logs["s8/active_masks"] == 2
    assert out.logs["s16/active_masks"] == 1  # mask 1 has only one /16 cell


def test_multiloss_weights_margins_logs():
    loss = MultiStrideLoss()
    assert sum(loss.loss_weights.values()) == pytest.approx(1)
    assert loss.loss_weights[16] == pytest.approx(16 * loss.loss_weights[1])
    for s, (dv, dd) in loss.margins.items():
        assert (dv, dd) == pytest.approx(default_margins(s))
        assert 2 * dd < math.sqrt(3 * s * s)  # reachable within the unit cube
    masks = torch.zeros(2, 3, 64, 64, dtype=torch.bool)
    masks[:, 0, :32], masks[:, 1, 32:], masks[:, 2, 32:, 32:] = True, True, True
    feats = {s: torch.rand(2, 3 * s * s, 64 // s, 64 // s, requires_grad=True) for s in (1, 2, 4, 8, 16)}
    out = loss(feats, masks)
    out.total.backward()
    keys = {"loss/total"} | {f"s{s}/{p}" for s in (1, 2, 4, 8, 16)
                             for p in ("pull", "push", "reg", "active_masks", "spread")}
    assert set(out.logs) == keys
    assert all(math.isfinite(v) for v in out.logs.values())
    assert all(f.grad is not None and torch.isfinite(f.grad).all() for f in feats.values())
    with pytest.raises(ValueError, match="stride 4"):
        loss({**feats, 4: torch.rand(2, 48, 8, 8)}, masks)
    with pytest.raises(ValueError, match="loss_weights"):
        MultiStrideLoss(strides=(1, 2), loss_weights={1: 1.0})


def test_feature_spread_detects_collapse():
    assert feature_spread(torch.full((2, 3, 8, 8), 0.3)).item() < 1e-6
    assert feature_spread(torch.rand(2, 3, 8, 8)).item() > 0.2


def test_free_features_reach_zero_loss():
    """Optimising a free feature tensor must drive every part to (near) zero: the loss is satisfiable."""
    masks = torch.zeros(1, 4, 32, 32, dtype=torch.bool)
    masks[0, 0, :16, :16], masks[0, 1, :16, 16:], masks[0, 2, 16:, :], masks[0, 3, 20:, 4:12] = True, True, True, True
    loss = MultiStrideLoss(push_pairs="disjoint", gamma=0.0)
    logits = {s: torch.zeros(1, 3 * s * s, 32 // s, 32 // s).normal_(0, 0.1).requires_grad_() for s in loss.strides}
    opt = torch.optim.Adam(logits.values(), lr=0.1)
    for _ in range(150):
        out = loss({s: torch.sigmoid(v) for s, v in logits.items()}, masks)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    assert out.total.item() < 1e-3


@pytest.mark.parametrize("seed", range(3))
def test_dense_and_sparse_layouts_agree(seed):
    # c = 6 and 20: on CPU the sparse layout runs the compiled loops (narrow rows) or the tensor version (wide rows)
    c, h, w = (6, 7, 9) if seed % 2 == 0 else (20, 4, 5)
    x, masks, valid = random_case(seed, b=2, k=5, c=c, h=h, w=w, disjoint=False)
    weight = torch.rand(2, h, w, dtype=torch.float64) * (torch.rand(2, h, w) > 0.2)
    kw = dict(delta_v=0.05, delta_d=0.6, pixel_weight=weight)
    xs, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    a = discriminative_loss(xs, masks, valid, dense=False, **kw)
    d = discriminative_loss(xd, masks, valid, dense=True, **kw)
    for p, q in zip((a.total, a.pull, a.push, a.reg), (d.total, d.pull, d.push, d.reg)):
        assert torch.allclose(p, q, atol=1e-10)
    a.total.backward(), d.total.backward()
    assert torch.allclose(xs.grad, xd.grad, atol=1e-8)
    for dense in (True, False):  # the sparse layout has a hand-written backward
        f = lambda t, dense=dense: discriminative_loss(t, masks, valid, dense=dense, **kw).total  # noqa: E731
        assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-5)
    # gradients through the means alone (push and regulariser, no pull): the other half of that backward
    kw.update(alpha=0.0)
    f = lambda t: discriminative_loss(t, masks, valid, dense=False, **kw).total  # noqa: E731
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 5, 7, 9), (3, 2, 16, 5)])
def test_member_index_equals_nonzero(shape):
    g = torch.Generator().manual_seed(sum(shape))
    masks = torch.rand(shape, generator=g) > 0.7
    assert torch.equal(_member_index(masks), masks.reshape(-1).nonzero().squeeze(1))
    sub = masks[:, 1:]  # a view with a storage offset
    assert torch.equal(_member_index(sub), sub.reshape(-1).nonzero().squeeze(1))


def test_feature_spread_ignores_invalid_cells():
    x = torch.rand(2, 4, 6, 6)
    valid = torch.ones(2, 6, 6, dtype=torch.bool)
    valid[:, :, 4:] = False
    x_padded = x.clone()
    x_padded[:, :, :, 4:] = 5.0  # padding far from the data must not count
    expected = x[:, :, :, :4].flatten(2).std(2, unbiased=False).mean()
    assert torch.allclose(feature_spread(x_padded, valid), expected, atol=1e-6)
    expected = x.flatten(2).std(2, unbiased=False).mean()
    assert torch.allclose(feature_spread(x, torch.ones_like(valid)), expected, atol=1e-6)


@pytest.mark.parametrize("dense", [True, False])
def test_feature_scale_equals_scaling_the_features(dense):
    x, masks, valid = random_case(4, b=2, k=4, c=6, h=6, w=7, disjoint=False)
    kw = dict(delta_v=0.02, delta_d=0.3, dense=dense)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    scaled = discriminative_loss(a, masks, valid, feature_scale=0.4, **kw)
    direct = discriminative_loss(b * 0.4, masks, valid, **kw)
    for part in ("total", "pull", "push", "reg"):
        assert torch.allclose(getattr(scaled, part), getattr(direct, part), atol=1e-10)
    scaled.total.backward(), direct.total.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)


def test_per_image_chunks_give_the_same_loss_and_gradients(monkeypatch):
    x, masks, valid = random_case(5, b=3, k=4, c=5, h=8, w=6, disjoint=False)
    weight = torch.rand(3, 8, 6, dtype=torch.float64) * (torch.rand(3, 8, 6) > 0.2)
    kw = dict(delta_v=0.02, delta_d=0.3, dense=False, pixel_weight=weight)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    whole = discriminative_loss(a, masks, valid, **kw)
    monkeypatch.setattr(pull_module, "_PER_IMAGE_ABOVE", 0)
    chunked = discriminative_loss(b, masks, valid, **kw)
    assert torch.allclose(whole.total, chunked.total, atol=1e-12)
    whole.total.backward(), chunked.total.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    f = lambda t: discriminative_loss(t, masks, valid, **kw).total  # noqa: E731
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(),), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("c", [3, 12])
def test_fused_cpu_pull_equals_tensor_version(monkeypatch, c):
    """Narrow CPU strides use compiled loops; the tensor version (GPU, wide strides) must give the same values and
    gradients."""
    x, masks, valid = random_case(6, b=3, k=5, c=c, h=9, w=8, disjoint=False)
    weight = torch.rand(3, 9, 8, dtype=torch.float64) * (torch.rand(3, 9, 8) > 0.2)
    kw = dict(delta_v=0.03, delta_d=0.3, dense=False, pixel_weight=weight, feature_scale=0.7)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    fused = discriminative_loss(a, masks, valid, **kw)
    monkeypatch.setattr(pull_module, "_FUSED", False)
    tensor = discriminative_loss(b, masks, valid, **kw)
    for part in ("total", "pull", "push", "reg"):
        assert torch.allclose(getattr(fused, part), getattr(tensor, part), atol=1e-12), part
    fused.total.backward(), tensor.total.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert torch.autograd.gradcheck(lambda t: discriminative_loss(t, masks, valid, **kw).total,
                                    (x.clone().requires_grad_(),), eps=1e-6, atol=1e-5)  # the tensor version


def _nested_scene():
    """One 64x64 image: object O (rows 0-31) with disjoint parts A, B; an occluded object cut in two pieces C1, C2
    (one annotation, group 7); a lone object D. Order: O, A, B, C1, C2, D."""
    m = torch.zeros(1, 6, 64, 64, dtype=torch.bool)
    m[0, 0, :32, :] = True
    m[0, 1, :32, :16] = True
    m[0, 2, :32, 40:] = True
    m[0, 3, 40:64, :10] = True
    m[0, 4, 40:64, 20:30] = True
    m[0, 5, 33:, 40:] = True  # one row below O: its only neighbour
    groups = torch.tensor([[1, 2, 3, 7, 7, 4]])
    return m, groups


def test_nested_pairs_never_push_pieces_containers_or_siblings_under_an_active_parent():
    masks, groups = _nested_scene()
    loss = MultiStrideLoss(push_pairs="nested")
    pairs = loss.stride_pairs(masks, torch.ones(1, 6, dtype=torch.bool), groups)
    for s in loss.strides:
        p = pairs[s][1][0]
        assert torch.equal(p, p.T)
        assert not p[3, 4]  # two pieces of one annotation
        assert not p[0, 1] and not p[0, 2]  # an object and its own parts
        assert not p[1, 2]  # siblings while their parent O counts at this stride
        assert p[1, 5] and p[0, 5]  # disjoint masks of different objects
        assert p[3, 5] or not pairs[s][0][0, 3]  # (C1, 240 px, has < 2 cells at /16)
    # With a size band O (2048 px) stops counting at /1 (max 1024 px) ... so A and B, 512 and 768 px, are pushed there
    band = MultiStrideLoss(push_pairs="nested", max_cells=1024)
    pairs = band.stride_pairs(masks, torch.ones(1, 6, dtype=torch.bool), groups)
    active, p = pairs[1]
    assert not active[0, 0] and active[0, 1] and p[0, 1, 2]
    assert pairs[2][0][0, 0] and not pairs[2][1][0, 1, 2]  # ... and at /2 (max 4096 px) O counts again
    assert pairs[16][0][0, 0] and not pairs[16][0][0, 3]  # no upper bound at the coarsest; C1 is too small there
    # adjacency at a stride: A and D are far apart (only neighbours must differ where D = 3)
    adj = MultiStrideLoss(push_pairs="nested", adjacent_strides=(1,))
    p1 = adj.stride_pairs(masks, torch.ones(1, 6, dtype=torch.bool), groups)[1][1][0]
    assert p1[0, 5] and not p1[1, 5] and not p1[0, 3]  # O touches D; A and D, O and C1 lie >= 8 px apart
    assert adj.stride_pairs(masks, torch.ones(1, 6, dtype=torch.bool), groups)[2][1][0, 1, 5]  # /2 pushes all
    with pytest.raises(ValueError, match="max_cells"):
        MultiStrideLoss(max_cells=1, min_cells=2)


def test_nested_loss_is_satisfiable_on_free_features():
    masks, groups = _nested_scene()
    loss = MultiStrideLoss(push_pairs="nested", max_cells=1024, strides=(1, 2, 4))
    torch.manual_seed(0)
    logits = {s: (torch.randn(1, 3 * s * s, 64 // s, 64 // s) * 0.1).requires_grad_() for s in loss.strides}
    opt = torch.optim.Adam(logits.values(), lr=0.1)
    for _ in range(150):
        out = loss({s: torch.sigmoid(v) for s, v in logits.items()}, masks, groups=groups)
        opt.zero_grad()
        out.total.backward()
        opt.step()
    logs = out.read()
    assert logs["loss/total"] < 0.01 and all(logs[f"s{s}/push"] < 1e-3 for s in loss.strides)


@pytest.mark.parametrize("mode", ["all", "disjoint", "nested"])
@pytest.mark.parametrize("padded", [False, True])
def test_multistride_loss_reads_nothing_on_the_host(mode, padded, no_host_reads):
    masks, groups = _nested_scene()
    valid = torch.ones(1, 64, 64, dtype=torch.bool)
    valid[:, :, 60:] = False
    feats = {s: torch.rand(1, 3 * s * s, 64 // s, 64 // s, requires_grad=True) for s in (1, 2, 4, 8, 16)}
    loss = MultiStrideLoss(push_pairs=mode, max_cells=256 if mode == "nested" else None,
                           adjacent_strides=(1,) if mode == "nested" else ())
    with no_host_reads():
        out = loss(feats, masks, torch.ones(1, 6, dtype=torch.bool), valid if padded else None, groups)
        out.total.backward()
    assert isinstance(out.logs["loss/total"], torch.Tensor)


def test_logs_are_read_in_one_go():
    masks, groups = _nested_scene()
    feats = {s: torch.rand(1, 3 * s * s, 64 // s, 64 // s) for s in (1, 2)}
    out = MultiStrideLoss(strides=(1, 2), push_pairs="nested")(feats, masks, groups=groups)
    logs = out.read()
    assert set(logs) == set(out.logs) and all(isinstance(v, float) for v in logs.values())
    assert logs["loss/total"] == pytest.approx(float(out.total))


def test_relations_reuse_the_loss_pooling_unchanged():
    """The loss hands its per-stride pooling to the relations (one pooling pass per batch): the same relations."""
    from featlib.relations import mask_relations

    g = torch.Generator().manual_seed(0)
    masks = torch.rand(2, 7, 300, 260, generator=g) < 0.3
    masks[:, :3, :150] = False
    valid = torch.ones(2, 300, 260, dtype=torch.bool)
    valid[:, 280:] = False
    down = downsample_masks(masks, (1, 2, 4), valid)
    plain, reused = mask_relations(masks), mask_relations(masks, pooled=down)
    assert set(plain) == set(reused) and all(torch.equal(plain[k], reused[k]) for k in plain)
    assert torch.equal(pair_relations(masks, "adjacent"), pair_relations(masks, "adjacent", pooled=down))
