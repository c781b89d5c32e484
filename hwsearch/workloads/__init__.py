"""What a run compresses: a trained model and its data, from one of several sources.

    workload = open_workload(RunConfig(model="resnet18_digits"))     # trained on first use, cached
    workload.model, workload.data.train, workload.data.evaluate(model, workload.data.test)

`workload` is the one interface (a model, its (train, val, test) splits, a metric and a
loss); `sources` picks the source: `builtin` (the project's models trained on a built-in
data set: `digits`, `fashion_mnist`) or `user` (the user's model and data, as functions or
objects, or on a built-in data set or an `imagefolder`). `data` holds the splits (tensors in
memory, a Dataset served by DataLoaders, or the user's DataLoader), `training` the loops
shared by pre-training and retraining, `cache` the checked cache of trained weights, and
`models` the architectures defined in the project.
"""
from hwsearch.workloads.cache import default_cache_dir, usable_cache_dir
from hwsearch.workloads.data import AnySplit, Data, DatasetSplit, LoaderSplit, Split, on_device, top1
from hwsearch.workloads.builtin import RECIPES, dataset_of, load_data, load_workload
from hwsearch.workloads.digits import load_digits_split
from hwsearch.workloads.fashion_mnist import load_fashion_mnist
from hwsearch.workloads.imagefolder import load_image_folder
from hwsearch.workloads.models import build_model, load_user_model, model_names, resolve_model
from hwsearch.workloads.sources import open_data, open_workload
from hwsearch.workloads.training import TrainConfig, accuracy, train
from hwsearch.workloads.user import load_user_workload, user_model_on, user_workload
from hwsearch.workloads.workload import Workload

__all__ = ["RECIPES", "AnySplit", "Data", "DatasetSplit", "LoaderSplit", "Split", "TrainConfig", "Workload", "accuracy",
           "build_model", "dataset_of", "default_cache_dir", "load_data", "load_digits_split", "load_fashion_mnist",
           "load_image_folder", "load_user_model", "load_user_workload", "load_workload", "model_names", "on_device", "open_data",
           "open_workload", "resolve_model", "top1", "train", "usable_cache_dir", "user_model_on", "user_workload"]
