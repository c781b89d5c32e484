"""Low-rank factorisations of conv and linear layers, from the weights or from feature maps.

For a layer with K outputs, C inputs, a kh x kw kernel and G groups (each group
factorised on its own, so that grouped and depthwise convs keep their groups):

- `svd` (Xue et al. 2013 for linear; the channel factorisation of Zhang et al. 2015 for
  conv): W_g (K/G x C/G kh kw) ~ B A by truncated SVD; A is a conv of r filters per group
  with the original kernel and stride, B a grouped 1x1 conv. Weights r (C kh kw + K).
  The singular values are split evenly (sqrt) between A and B so that both quantize alike.
- `spatial` (Jaderberg et al. 2014, in the closed form of Tai et al. 2016): a kh x 1 conv
  C -> r then a 1 x kw conv r -> K, from the SVD of W rearranged to (C kh) x (kw K).
  Weights r (C kh + K kw).
- `tucker2` (Kim et al. 2015): 1x1 conv C -> r_in, kh x kw core r_in -> r_out, 1x1 conv
  r_out -> K, by HOSVD of the kernel's two channel modes. Weights C r_in + r_in r_out kh kw + r_out K.

Data-aware variants (`data_aware=True`) reconstruct the layer's output feature maps on its
calibration inputs instead of its weights, with a bias correction for the mean:
`svd` in closed form (Zhang et al. 2015: W' = P W, P the projection on the top-r principal
directions of the responses W x, so min ||W X - W' X|| over rank r), `spatial` and
`tucker2` by refitting their last factor by least squares on the responses given the
hidden map of the first ones. A small ridge towards the weights keeps the fit sensible
where the calibration data span few directions.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from hwsearch.compression._base import Fitted, Fitter, Geometry, Operator, Step, Structure, register, thin_svd
from hwsearch.errors import OptionError
from hwsearch.compression.options import Option


def _check_rank(name: str, rank: int, limit: int, what: str, option: Option) -> None:
    if rank > limit:
        raise OptionError(f"option {option.label}: {name} {rank} exceeds {what} ({limit}); choose a rank of at "
                          f"most {limit}")


def _balance(first: torch.Tensor, second: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rescale rank components so that row i of `first` (r, n) and column i of `second` (K, r) have equal
    norms: the product is unchanged and both factors quantize alike."""
    scale = (first.norm(dim=1) / second.norm(dim=0).clamp_min(1e-30)).clamp_min(1e-30).sqrt()   # (r,)
    return first / scale[:, None], second * scale


def reduced_rank(fitter: Fitter, option: Option, g: int, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zhang et al.'s closed form for group g: (first (r, n), second (K_g, r), bias correction (K_g,)), float64.

    P = U_r U_r^T with U_r the top-r eigenvectors of the response covariance (plus the ridge
    on the weights); W' = P W minimises ||(W - W') X||^2 over rank r for centred inputs X,
    and b' = b + (I - P) mean(W x) puts the mean back.
    """
    def compute():
        rows = fitter.group_rows(g)
        responses = fitter.responses(option)[:, rows]                     # (samples, K_g)
        mean = responses.mean(dim=0)
        centred = responses - mean
        w = fitter.matrix[rows].double()                                   # (K_g, n)
        metric = centred.T @ centred / len(centred) + fitter.ridge(option) * (w @ w.T)
        values, vectors = torch.linalg.eigh(metric)                        # ascending
        return vectors.flip(1), mean, w
    vectors, mean, w = fitter.cached(("reduced_rank", g), compute)
    basis = vectors[:, :rank]                                              # (K_g, r)
    first, second = _balance(basis.T @ w, basis)
    correction = mean - basis @ (basis.T @ mean)
    return first, second, correction


def refit_last(fitter: Fitter, option: Option, structure: Structure, matrices: list[torch.Tensor]
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares refit of the last step's factor to the layer's responses, given the earlier factors.

    Returns (last matrix, float32; new bias, float32): the responses y = W x are regressed, per group
    and with an intercept, on the last step's input patches; the intercept joins the bias.
    """
    chain = structure[0]
    *head, last = chain
    x = fitter.require_inputs(option)
    with torch.no_grad():
        for step in head:
            x = step.apply(x, matrices[step.factor])
        if last.kernel is None:
            features = x.reshape(-1, x.shape[-1]).double()                  # (samples, r)
        else:
            padding = last.padding
            if isinstance(padding, str):          # "same" (stride 1) or "valid"
                padding = (0, 0) if padding == "valid" else tuple((k - 1) * d // 2 for k, d in zip(last.kernel,
                                                                                                    last.dilation))
            cols = F.unfold(x, last.kernel, last.dilation, padding, last.stride)        # (N, r_total*taps, L)
            features = cols.transpose(1, 2).reshape(-1, cols.shape[1]).double()
    responses = fitter.responses(option)                                    # (samples, K)
    groups = last.groups
    per_in = features.shape[1] // groups
    per_out = responses.shape[1] // groups
    new, correction = [], []
    for g in range(groups):
        f = features[:, g * per_in:(g + 1) * per_in]
        y = responses[:, g * per_out:(g + 1) * per_out]
        f_mean, y_mean = f.mean(dim=0), y.mean(dim=0)
        fc, yc = f - f_mean, y - y_mean
        gram = fc.T @ fc
        gram += 1e-8 * gram.diagonal().mean().clamp_min(1e-30) * torch.eye(len(gram), dtype=gram.dtype)
        solution = torch.linalg.solve(gram, fc.T @ yc).T                    # (K_g, r*taps)
        new.append(solution)
        correction.append(y_mean - solution @ f_mean)
    bias = torch.cat(correction)
    if fitter.bias is not None:
        bias = bias + fitter.bias.double()
    return torch.cat(new).float(), bias.float()


class Svd(Operator):
    methods = ("svd",)

    def structure(self, geometry: Geometry, option: Option) -> Structure:
        return svd_chain(geometry, option, option.rank, 0, 1)

    def fit(self, fitter: Fitter, option: Option) -> Fitted:
        first, second, bias = svd_factors(fitter, option, option.rank)
        return Fitted([first, second], [None, None], bias)


def svd_chain(geometry: Geometry, option: Option, rank: int, first: int, second: int) -> Structure:
    """The two steps of a rank-`rank` SVD (per group), applying factors `first` and `second`."""
    k, n, g = geometry.out_channels, geometry.in_channels, geometry.groups
    kg, ng = k // g, geometry.matrix_shape[1]
    _check_rank("rank", rank, min(kg, ng), "the smaller side of each group's weight matrix", option)
    if geometry.kind == "linear":
        return ((Step(first, rank, n), Step(second, k, rank)),)
    return ((Step(first, g * rank, n, geometry.kernel, geometry.stride, geometry.padding, geometry.dilation, g),
             Step(second, k, g * rank, (1, 1), groups=g)),)


def svd_factors(fitter: Fitter, option: Option, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(first (G r, n), second (K, r), bias or None) of a rank-`rank` SVD, from weights or feature maps."""
    firsts, seconds, corrections = [], [], []
    for g in range(fitter.geometry.groups):
        if option.data_aware:
            first, second, correction = reduced_rank(fitter, option, g, rank)
            corrections.append(correction)
        else:
            u, s, vh = fitter.svd(g)
            root = s[:rank].sqrt()
            first, second = vh[:rank] * root[:, None], u[:, :rank] * root
        firsts.append(first.float())
        seconds.append(second.float())
    bias = None
    if corrections:
        bias = torch.cat(corrections) + (fitter.bias.double() if fitter.bias is not None else 0.0)
        bias = bias.float()
    return torch.cat(firsts), torch.cat(seconds), bias


class Spatial(Operator):
    methods = ("spatial",)

    def structure(self, geometry: Geometry, option: Option) -> Structure:
        if geometry.kind != "conv" or min(geometry.kernel) < 2:
            raise OptionError(f"option {option.label}: spatial separation splits a kh x kw kernel with kh, kw >= 2 "
                              f"into kh x 1 and 1 x kw; this layer is a {geometry.kind} with kernel {geometry.kernel}; "
                              "use svd instead")
        (kh, kw), g = geometry.kernel, geometry.groups
        kg, cg = geometry.out_channels // g, geometry.weight_shape[1]
        _check_rank("rank", option.rank, min(cg * kh, kw * kg), "the rank of each group's (C kh) x (kw K) kernel",
                    option)
        (sy, sx), (dy, dx) = geometry.stride, geometry.dilation
        pad = geometry.padding
        first_pad, second_pad = (pad, pad) if isinstance(pad, str) else ((pad[0], 0), (0, pad[1]))
        r = g * option.rank
        return ((Step(0, r, geometry.in_channels, (kh, 1), (sy, 1), first_pad, (dy, 1), g),
                 Step(1, geometry.out_channels, r, (1, kw), (1, sx), second_pad, (1, dx), g)),)

    def fit(self, fitter: Fitter, option: Option) -> Fitted:
        geo = fitter.geometry
        (kh, kw), g, r = geo.kernel, geo.groups, option.rank
        kg, cg = geo.out_channels // g, geo.weight_shape[1]
        firsts, seconds = [], []
        for group in range(g):
            def decompose(group=group):
                w = fitter.module.weight.detach()[fitter.group_rows(group)].double()     # (K_g, C_g, kh, kw)
                rearranged = w.permute(1, 2, 3, 0).reshape(cg * kh, kw * kg)             # [(c, i), (j, k)]
                return thin_svd(rearranged)
            u, s, vh = fitter.cached(("spatial_svd", group), decompose)
            root = s[:r].sqrt()
            vertical = (u[:, :r] * root).T                                               # (r, C_g kh): [r, (c, i)]
            horizontal = (vh[:r] * root[:, None]).reshape(r, kw, kg).permute(2, 0, 1).reshape(kg, r * kw)
            firsts.append(vertical.float())
            seconds.append(horizontal.float())
        matrices = [torch.cat(firsts), torch.cat(seconds)]
        bias = None
        if option.data_aware:
            matrices[1], bias = refit_last(fitter, option, self.structure(geo, option), matrices)
        return Fitted(matrices, [None, None], bias)


class Tucker2(Operator):
    methods = ("tucker2",)

    def structure(self, geometry: Geometry, option: Option) -> Structure:
        if geometry.kind != "conv":
            raise OptionError(f"option {option.label}: Tucker-2 factorises a conv kernel's two channel modes; a "
                              "linear layer has one pair of modes: use svd")
        g = geometry.groups
        kg, cg, taps = geometry.out_channels // g, geometry.weight_shape[1], geometry.kernel[0] * geometry.kernel[1]
        # each mode's rank is bounded by the rank of the kernel unfolded along it
        _check_rank("rank (r_in)", option.rank, min(cg, kg * taps), "the rank of the input-channel unfolding", option)
        _check_rank("rank_out", option.rank_out, min(kg, cg * taps), "the rank of the output-channel unfolding",
                    option)
        r_in, r_out = g * option.rank, g * option.rank_out
        return ((Step(0, r_in, geometry.in_channels, (1, 1), groups=g),
                 Step(1, r_out, r_in, geometry.kernel, geometry.stride, geometry.padding, geometry.dilation, g),
                 Step(2, geometry.out_channels, r_out, (1, 1), groups=g)),)

    def fit(self, fitter: Fitter, option: Option) -> Fitted:
        geo = fitter.geometry
        g, r_in, r_out = geo.groups, option.rank, option.rank_out
        kg, cg = geo.out_channels // g, geo.weight_shape[1]
        firsts, cores, lasts = [], [], []
        for group in range(g):
            w = fitter.module.weight.detach()[fitter.group_rows(group)].double()            # (K_g, C_g, kh, kw)
            u_out = fitter.svd(group)[0][:, :r_out]                                         # (K_g, r_out)
            u_in = fitter.cached(("input_mode_svd", group), lambda w=w: thin_svd(
                w.transpose(0, 1).reshape(cg, -1)))[0][:, :r_in]                            # (C_g, r_in)
            core = torch.einsum("kcij,ko,cp->opij", w, u_out, u_in)                         # (r_out, r_in, kh, kw)
            firsts.append(u_in.T.float())
            cores.append(core.reshape(r_out, -1).float())
            lasts.append(u_out.float())
        matrices = [torch.cat(firsts), torch.cat(cores), torch.cat(lasts)]
        bias = None
        if option.data_aware:
            matrices[2], bias = refit_last(fitter, option, self.structure(geo, option), matrices)
        return Fitted(matrices, [None, None, None], bias)


register(Svd())
register(Spatial())
register(Tucker2())
