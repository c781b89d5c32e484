"""The layer kept whole: one factor, its own weight (pruned and quantized as the option says)."""
from __future__ import annotations

from hwsearch.compression._base import Fitted, Fitter, Geometry, Operator, Step, Structure, register
from hwsearch.compression.options import Option


class Dense(Operator):
    methods = ("dense",)

    def structure(self, geometry: Geometry, option: Option) -> Structure:
        k, n = geometry.out_channels, geometry.in_channels
        if geometry.kind == "linear":
            return ((Step(0, k, n),),)
        return ((Step(0, k, n, geometry.kernel, geometry.stride, geometry.padding, geometry.dilation,
                      geometry.groups),),)

    def fit(self, fitter: Fitter, option: Option) -> Fitted:
        return Fitted([fitter.matrix], [None])


register(Dense())
