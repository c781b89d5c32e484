"""ViT-Tiny/16 (DeiT-Ti), the transformer among the reference architectures.

Touvron et al. 2021, "Training data-efficient image transformers" (arXiv:2012.12877), Table 1:
DeiT-Ti is ViT with embedding 192, 3 heads, 12 blocks, 16x16 patches at 224x224, MLP ratio 4;
timm's `vit_tiny_patch16_224` and `deit_tiny_patch16_224` are this network, 5,717,416
parameters. Written with `nn.Linear` for every projection and the attention as two matrix
products (timm's non-fused path), so that the layer graph sees the four Linear layers of each
block (the compressible ones) and prices both products, as torch's FLOP counter counts them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                        # (b, heads, n, d / heads)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        context = scores.softmax(dim=-1) @ v
        return self.proj(context.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attention(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionTransformer(nn.Module):
    def __init__(self, num_classes: int = 1000, image: int = 224, patch: int = 16, dim: int = 192, depth: int = 12,
                 heads: int = 3):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)                      # (b, patches, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])                                               # the class token


def vit_tiny(num_classes: int = 1000) -> VisionTransformer:
    """ViT-Tiny/16 at 224x224: 5,717,416 parameters, 1.26 GMACs (attention products included)."""
    return VisionTransformer(num_classes)
