"""An ImageNet-size model and synthetic 224x224 data, for `benchmarks/scale.py`'s whole run.

    hwsearch --model benchmarks/imagenet_like.py:resnet50 --data benchmarks/imagenet_like.py:load \\
        --input 3x224x224 --target cortex-a76 --budget 25MB --finetune-steps 10 --top-k 1

No ImageNet can be downloaded here, and no pretrained weights: the model is the project's
ResNet-50 (torchvision's definition, 1,000 classes) with seeded random weights, and the images
are seeded Gaussian noise with random labels. Accuracy means nothing on them; what such a run
shows is the time and memory of each stage, and that the file, its ONNX export and its
predicted latency are right for a real ImageNet-size network.
"""
import torch
from torch.utils.data import DataLoader, Dataset

from hwsearch.workloads.models import build_model

SIZES = {"train": 512, "val": 64, "test": 64}


class Noise(Dataset):
    """Seeded 3x224x224 Gaussian images with uniform labels, drawn on demand (nothing held in memory)."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed = n, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return torch.randn(3, 224, 224, generator=generator), int(torch.randint(1000, (1,), generator=generator))


def resnet50():
    torch.manual_seed(0)
    return build_model("resnet50").eval()


def load():
    """(train, val, test) DataLoaders of noise; only train is shuffled."""
    return tuple(DataLoader(Noise(n, seed), batch_size=32, shuffle=name == "train",
                            generator=torch.Generator().manual_seed(0) if name == "train" else None)
                 for seed, (name, n) in enumerate(SIZES.items()))


def resnet18():
    torch.manual_seed(0)
    return build_model("resnet18").eval()
