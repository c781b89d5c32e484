"""Reuse and tiling: how many bytes of each tensor cross each memory boundary.

A buffer of S bytes between the datapath and a slower memory lets a layer reuse what
it holds. For each boundary we compare the tilings a compiler would consider and keep
the one that moves the fewest bytes of the tensors the level holds:

    fits      W, I and O all fit: each crosses once (compulsory traffic)
    W stripe  k filters stay (k x C x R weights); the input streams past once per stripe:
              W once, I x ceil(K / k)
    I stripe  a band of output rows' inputs stays; every filter streams past it:
              I once (plus the halo rows bands share), W x ceil(P / p)
    O block   a p x k block of outputs accumulates in place while slivers of W and I
              stream through the reduction, p and k chosen to minimise
              W x P / p + I x K / k under p x k = outputs that fit (Hong and Kung's
              square tile)

with P = output positions, K = filters, C x R = reduction (channels x taps), all per
group. Operands a level does not hold pass through it: their traffic is that of the
next boundary inwards. Everything is vectorised over nests; capacities and byte widths
are arrays or scalars.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Shapes:
    """Per-group loop extents and byte sizes of each nest (arrays of equal length)."""
    P: np.ndarray           # output positions: batch x rows x columns
    K: np.ndarray
    C: np.ndarray
    R: np.ndarray           # filter taps FY x FX
    OX: np.ndarray
    IX: np.ndarray
    IYall: np.ndarray       # input rows of all images stacked
    SY: np.ndarray
    SX: np.ndarray
    FYe: np.ndarray         # kernel extent (dilated)
    FXe: np.ndarray
    Wg: np.ndarray          # bytes of W, I, O of one group
    Ig: np.ndarray
    Og: np.ndarray
    wbe: np.ndarray         # bytes per weight element, per input element, per output element
    abe: np.ndarray
    obe: np.ndarray


@dataclass
class Traffic:
    """Bytes of W and I read into, and of O written out of, the inner side of one boundary (per group)."""
    W: np.ndarray
    I: np.ndarray
    O: np.ndarray


def footprint(p: np.ndarray, s: Shapes) -> np.ndarray:
    """Input elements per channel that p consecutive output positions (row by row) need."""
    rows = np.ceil(p / s.OX)
    whole_rows = np.minimum(s.IYall, (rows - 1) * s.SY + s.FYe) * s.IX
    part_row = s.FYe * np.minimum(s.IX, (p - 1) * s.SX + s.FXe)
    return np.where(p >= s.OX, whole_rows, part_row)


def boundary(s: Shapes, capacity: float, held: tuple[bool, bool, bool], inner: Traffic | None,
             monotone: bool = True) -> Traffic:
    """Traffic across the outer side of a level of `capacity` bytes holding the operands `held` (W, I, O).

    `inner` is the traffic one boundary inwards (what passes through for operands the
    level does not hold); with `monotone`, this boundary never moves more than that one
    (false where the inner side counts other byte widths, as the datapath's operands do).
    """
    hw, hi, ho = (float(h) for h in held)
    S = float(capacity)
    inf = np.inf
    per_filter = s.C * s.R * s.wbe                               # bytes of one filter
    candidates = []                                              # (feasible, W, I, O)

    # fits: every held tensor crosses once
    fits = hw * s.Wg + hi * s.Ig + ho * s.Og <= S
    candidates.append((fits, s.Wg, s.Ig, s.Og))

    # W stripe: k filters resident, one output row of inputs and outputs in flight
    p0 = np.minimum(s.P, s.OX)
    band = s.C * footprint(p0, s) * s.abe
    denominator = hw * per_filter + ho * p0 * s.obe
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(np.where(denominator > 0, (S - hi * band) / denominator, np.where(S >= hi * band, inf, 0)))
    k = np.minimum(k, s.K)
    ok = k >= 1
    n_k = np.ceil(s.K / np.where(ok, k, 1))
    candidates.append((ok, s.Wg, s.Ig * n_k, s.Og))

    # I stripe: a band of r output rows' inputs resident, filters stream one at a time
    fixed = hw * per_filter
    row_cost = hi * s.C * s.abe * s.IX * s.SY + ho * s.OX * s.obe
    room = S - fixed - hi * s.C * s.abe * s.IX * (s.FYe - s.SY)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.floor(np.where(row_cost > 0, room / row_cost, np.where(room >= 0, inf, 0)))
        col_cost = hi * s.C * s.abe * s.FYe * s.SX + ho * s.obe
        col_room = S - fixed - hi * s.C * s.abe * s.FYe * (s.FXe - s.SX)
        q = np.floor(np.where(col_cost > 0, col_room / col_cost, np.where(col_room >= 0, inf, 0)))
    p = np.where(r >= 1, np.minimum(s.P, r * s.OX), np.minimum(np.minimum(q, s.OX), s.P))
    ok = p >= 1
    p = np.where(ok, p, 1)
    n_p = np.ceil(s.P / p)
    i_read = np.maximum(s.Ig, n_p * s.C * footprint(p, s) * s.abe)
    candidates.append((ok, s.Wg * n_p, i_read, s.Og))

    # O block: p x k outputs accumulate in place; W and I slivers stream through the reduction
    if ho:
        tile = 0.5 * S / s.obe                                   # outputs that fit in half the level
        a, b = s.Wg * s.P, np.maximum(s.Ig, 1e-9) * s.K
        p = np.clip(np.sqrt(a * tile / b), 1, s.P)
        k = np.clip(tile / p, 1, s.K)
        p = np.clip(tile / k, 1, s.P)
        ok = np.broadcast_to(tile >= 1, s.P.shape)
        n_p, n_k = np.ceil(s.P / p), np.ceil(s.K / k)
        i_read = np.maximum(s.Ig, n_p * s.C * footprint(p, s) * s.abe) * n_k
        candidates.append((ok, s.Wg * n_p, i_read, s.Og))

    # no reuse at all: every MAC fetches its operands (the last resort of a tiny buffer)
    macs = s.P * s.K * s.C * s.R
    candidates.append((np.ones_like(s.P, dtype=bool), macs * s.wbe, macs * s.abe,
                       s.Og * np.maximum(1, 2 * s.C * s.R - 1)))

    inner = inner or Traffic(np.full_like(s.Wg, inf), np.full_like(s.Ig, inf), np.full_like(s.Og, inf))
    shape = s.Wg.shape
    feasible = np.stack([np.broadcast_to(c[0], shape) for c in candidates])
    W = np.stack([np.broadcast_to(c[1], shape) for c in candidates])
    I = np.stack([np.broadcast_to(c[2], shape) for c in candidates])
    O = np.stack([np.broadcast_to(c[3], shape) for c in candidates])
    # operands this level does not hold pass through: they cost what they cost one level in
    W = np.where(hw, W, inner.W)
    I = np.where(hi, I, inner.I)
    O = np.where(ho, O, inner.O)
    held_total = np.where(hw, W, 0) + np.where(hi, I, 0) + np.where(ho, O, 0)
    held_total = np.where(feasible, held_total, inf)
    best = np.argmin(held_total, axis=0)
    pick = lambda t: np.take_along_axis(t, best[None], axis=0)[0]     # noqa: E731
    out = Traffic(pick(W), pick(I), pick(O))
    if not monotone:
        return out
    # a bigger buffer further out never moves more than the one inside it
    return Traffic(np.minimum(out.W, inner.W), np.minimum(out.I, inner.I), np.minimum(out.O, inner.O))
