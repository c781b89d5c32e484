"""`Layer`: one costed operation of a traced model, with its shapes and MACs; compressible when a
module holds its weight (conv, linear)."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Layer:
    """A costed operation; conv and linear layers held by modules are also compressible.

    Conv: weight (K, C/groups, kh, kw), activations (N, C, H, W). Linear: weight
    (out, in), activations (..., in). Transposed conv: weight (C_in, K/groups, kh, kw).
    Matmul (`a @ b` with b an activation): weight_shape (n, k) is b viewed per product,
    groups the number of products (batch and heads). Elementwise and pool ops have no
    weight; `in_elems` counts the elements of all their tensor inputs.
    """
    name: str                      # qualified module name ("layer1.0.conv1") or fx node name ("add_3")
    kind: str                      # conv, linear, conv_transpose, matmul, pool, elementwise
    weight_shape: tuple[int, ...]  # () for pool and elementwise
    in_shape: tuple[int, ...]      # activation shapes include the batch dimension of the example
    out_shape: tuple[int, ...]
    groups: int = 1
    stride: tuple[int, ...] = (1,)
    padding: tuple[int, ...] = (0,)
    dilation: tuple[int, ...] = (1,)
    has_bias: bool = False
    macs: int = 0                  # multiply-accumulates for the traced example
    compressible: bool = True      # a module's weight hwsearch may factorise, prune and quantise
    window: tuple[int, ...] = ()   # pooling window (kh, kw)
    in_elems: int = 0              # elementwise and pool: elements of all tensor inputs

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the weight as a matrix: K x (C/groups * kh * kw)."""
        return self.weight_shape[0], math.prod(self.weight_shape[1:])

    @property
    def n_weights(self) -> int:
        return math.prod(self.weight_shape) if self.weight_shape else 0

    @property
    def out_positions(self) -> int:
        """Output positions per example: H_out * W_out for a conv, leading dims for a linear."""
        out_features = self.out_shape[1] if self.kind in ("conv", "conv_transpose") else self.out_shape[-1]
        return math.prod(self.out_shape[1:]) // out_features
