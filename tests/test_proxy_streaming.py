"""The proxy table in bounded memory: layer groups, calibration batches, sampled positions, Fisher sensitivities."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from hwsearch.compression import layer_options
from hwsearch.graph import LayerGraph
from hwsearch.proxy import build_proxy_table, cached_proxy_table, streaming
from hwsearch.proxy.divergence import fisher_sensitivity, layer_sensitivity


class Net(nn.Module):
    """Strided, padded, depthwise and pointwise convs and a linear layer: every geometry the sampled path computes."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.depthwise = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pointwise = nn.Conv2d(16, 32, 1)
        self.wide = nn.Conv2d(32, 32, (3, 1), stride=(2, 1), padding=(1, 0), bias=False)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.pointwise(torch.relu(self.depthwise(x))))
        x = torch.relu(self.wide(x))
        return self.fc(x.mean(dim=(2, 3)))


def small_net():
    """`Net`, its compressible layers, their default options and 24 seeded calibration images."""
    torch.manual_seed(0)
    model = Net().eval()
    layers = LayerGraph.trace(model, torch.zeros(1, 3, 16, 16)).compressible()
    options = {layer.name: layer_options(layer) for layer in layers}
    calibration = torch.randn(24, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return model, layers, options, calibration


@pytest.fixture(scope="module")
def setup():
    model, layers, options, calibration = small_net()
    exact = build_proxy_table(model, layers, options, calibration, streaming=False)
    return model, layers, options, calibration, exact


def test_with_every_position_and_image_the_streamed_table_is_the_exact_one(setup, monkeypatch):
    model, layers, options, calibration, exact = setup
    monkeypatch.setattr(streaming, "POSITIONS", 10 ** 9)
    monkeypatch.setattr(streaming, "FIT_IMAGES", len(calibration))
    streamed = build_proxy_table(model, layers, options, calibration, streaming=True)
    for layer in layers:
        np.testing.assert_array_equal(streamed.sizes[layer.name], exact.sizes[layer.name])
        np.testing.assert_allclose(streamed.errors[layer.name], exact.errors[layer.name], rtol=1e-4, atol=1e-7)


def test_sampled_positions_keep_each_layers_ranking_of_its_options(setup, monkeypatch):
    model, layers, options, calibration, exact = setup
    monkeypatch.setattr(streaming, "POSITIONS", 256)       # of 24 x 64 = 1,536 stem positions, 24 x 16 in `wide`
    streamed = build_proxy_table(model, layers, options, calibration, streaming=True)
    for layer in layers:
        assert spearmanr(streamed.errors[layer.name], exact.errors[layer.name])[0] > 0.98, layer.name


def test_a_group_per_layer_gives_the_same_rows_as_one_group(setup, monkeypatch):
    model, layers, options, calibration, _ = setup
    names = [layer.name for layer in layers]
    whole = {name: torch.cat(s.rows) for name, s in streaming.capture_samples(model, names, calibration)}
    single = {name: torch.cat(s.rows) for name, s in streaming.capture_samples(model, names, calibration, memory_bytes=1)}
    assert list(single) == names
    for name in names:
        torch.testing.assert_close(single[name], whole[name], rtol=0, atol=0)


def test_a_model_is_streamed_only_when_its_inputs_would_not_fit(setup, monkeypatch, tmp_path):
    model, layers, options, calibration, exact = setup
    from hwsearch.proxy import table
    assert not table.streams(model, layers, calibration)
    _, reused = cached_proxy_table(model, layers, options, calibration, tmp_path)
    assert not reused and len(list(tmp_path.glob("proxy-*.npz"))) == 1
    monkeypatch.setattr(table, "CAPTURE_LIMIT", 1000)
    assert table.streams(model, layers, calibration)
    streamed, reused = cached_proxy_table(model, layers, options, calibration, tmp_path)
    assert not reused and len(list(tmp_path.glob("proxy-*.npz"))) == 2      # its own cache entry, not the exact one's
    assert any(not np.array_equal(streamed.errors[n], exact.errors[n]) for n in exact.errors)


def test_fisher_sensitivities_agree_with_noise_injected_ones_on_a_softmax_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    layers = LayerGraph.trace(model, torch.zeros(1, 20)).compressible()
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        noise = layer_sensitivity(model, layers, x, relative_error=0.01, repeats=8)
    fisher = fisher_sensitivity(model, layers, x, draws=8)
    for name in noise:
        assert 0.7 < fisher[name] / noise[name] < 1.4, (name, fisher[name], noise[name])


def test_a_run_whose_table_streams_refits_on_the_images_the_table_fitted_on(model_cache, tmp_path, monkeypatch):
    from hwsearch.config import RunConfig
    from hwsearch.proxy import table
    from hwsearch.runs.prepared import prepare

    config = RunConfig(model="lenet5_digits", budget="20KB", cache_dir=str(model_cache), results_dir=str(tmp_path))
    assert len(prepare(config).calibration) == config.calibration_size              # the exact path keeps them all
    monkeypatch.setattr(table, "CAPTURE_LIMIT", 1000)
    streamed = prepare(config)
    assert len(streamed.calibration) == streaming.FIT_IMAGES < config.calibration_size
