"""The Python API, called as a notebook would: hwsearch.search, load, cost, targets (no subprocess)."""
import gc
import json
import struct
import zlib

import pytest
import torch
from torch import nn

import hwsearch
from hwsearch.commands import main as cli_main
from hwsearch.compression import Option
from hwsearch.errors import ArtifactError, BudgetError, HwsearchError
from hwsearch.workloads import load_digits_split

MARKER = []      # what a builder named in a crafted file appends to, if it ever runs


def side_effect():
    """A builder a crafted file names: loading that file must never call it."""
    MARKER.append("ran")
    return SmallNet()


class SmallNet(nn.Module):
    """Two convs and a linear layer for 1x8x8 digits: 6,250 weights."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(torch.flatten(x, 1))


@pytest.fixture(scope="module")
def trained():
    """SmallNet trained for a few seconds on digits, and the digits splits as tensor pairs."""
    data = load_digits_split(seed=0)
    torch.manual_seed(0)
    model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(15):
        for x, y in data.train.batches(64, torch.Generator().manual_seed(0)):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    splits = tuple((s.x, s.y) for s in (data.train, data.val, data.test))
    return model.eval(), splits


@pytest.fixture(scope="module")
def result(trained, tmp_path_factory):
    model, splits = trained
    cache = tmp_path_factory.mktemp("api-cache")
    return hwsearch.search(model, splits, target="cortex-a76", budget="8KB", trials=40, top_k=2, finetune_epochs=1,
                           calibration=64, cache_dir=cache, progress=False)


def test_search_on_objects_returns_the_plan_the_model_and_the_front_within_the_budget(trained, result):
    model, splits = trained
    summary = result.summary
    assert summary["final"]["size_bytes"] == (result.folder / "model.hws").stat().st_size <= 8_000
    assert summary["model"] == "object:tests.test_api.SmallNet" and summary["metric"] == "top-1 accuracy"
    assert set(result.plan) == {"conv1", "conv2", "fc"} and all(isinstance(o, Option) for o in result.plan.values())
    assert result.plan == {n: result.model.get_submodule(n).option for n in result.plan}
    x = splits[2][0][:64]
    with torch.no_grad():
        predicted = result.model(x).argmax(1)
    accuracy = (result.model(splits[2][0]).argmax(1) == splits[2][1]).float().mean().item()
    assert accuracy == pytest.approx(summary["final"]["test_accuracy"]) and predicted.shape == (64,)
    assert result.front and [r["size_bytes"] for r in result.front] == sorted(r["size_bytes"] for r in result.front)
    assert all(r["size_bytes"] <= 8_000 for r in result.front)
    assert result.accuracy_floor_met == summary["accuracy_floor"]["met"]
    assert model.conv1.weight.requires_grad and type(model.conv1) is nn.Conv2d      # the caller's model is untouched


def test_save_keeps_the_run_folder_and_a_temporary_one_goes_with_the_result(trained, tmp_path):
    model, splits = trained
    run = hwsearch.search(model, splits, budget="10KB", trials=10, top_k=1, finetune_epochs=0, calibration=32,
                          cache_dir=tmp_path / "cache", progress=False)
    saved = run.save(tmp_path / "kept")
    assert (saved / "model.hws").read_bytes() == (run.folder / "model.hws").read_bytes()
    assert json.loads((saved / "summary.json").read_text())["run_id"] == run.summary["run_id"]
    with pytest.raises(HwsearchError, match="already exists"):
        run.save(tmp_path / "kept")
    temporary = run.folder
    del run
    gc.collect()
    assert not temporary.exists() and (tmp_path / "kept" / "model.hws").is_file()


def test_the_file_of_an_object_model_loads_into_its_architecture_only(result):
    path = result.folder / "model.hws"
    with pytest.raises(ArtifactError, match="tests.test_api.SmallNet that was passed to hwsearch as an object"):
        hwsearch.load(path)
    loaded, meta = hwsearch.load(path, model=SmallNet())
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))
    assert meta["model"] == {"class": "tests.test_api.SmallNet"}


def test_a_built_in_model_by_name_writes_its_run_folder_where_asked(model_cache, tmp_path):
    run = hwsearch.search("lenet5_digits", budget="20KB", trials=10, top_k=1, finetune_epochs=0, calibration=32,
                          cache_dir=model_cache, results=tmp_path / "results", run_id="api", progress=False)
    assert run.folder == tmp_path / "results" / "api" and run.summary["model"] == "lenet5_digits"
    model, meta = hwsearch.load(run.folder / "model.hws")
    assert meta["model"]["name"] == "lenet5_digits" and set(run.plan) == set(meta["layers"])


@pytest.mark.parametrize("changes, error", [
    ({"budget": "10XB"}, "budget '10XB' is not a size"),
    ({"budget": None}, "no budget given: set budget"),
    ({"top_k": 0}, "top_k must be at least 1, got 0"),
    ({"calibration": 0}, "calibration must be at least 1, got 0"),
    ({"input_shape": (1, 9, 9)}, "data gives inputs of shape 1x8x8 per example but input_shape says 1x9x9"),
    ({"input_shape": (1, 0)}, "input_shape (1, 0) is not a shape"),
    ({"eval": "not a function"}, "eval is an object of type str; pass a function"),
    ({"target": "cortex-a99"}, "unknown target 'cortex-a99'"),
])
def test_bad_arguments_raise_one_line_naming_the_argument(trained, tmp_path, changes, error):
    model, splits = trained
    arguments = {"budget": "8KB", "trials": 5, "cache_dir": tmp_path, "progress": False, **changes}
    with pytest.raises(HwsearchError) as raised:
        hwsearch.search(model, splits, **arguments)
    assert error in str(raised.value) and "\n" not in str(raised.value)
    assert not list(tmp_path.glob("**/model.hws"))


def test_a_model_object_needs_data_it_can_run_on(trained):
    model, splits = trained
    with pytest.raises(HwsearchError, match="a model passed as an object needs its data"):
        hwsearch.search(model, budget="8KB", progress=False)
    with pytest.raises(HwsearchError, match="a model passed as an object needs its data"):
        hwsearch.search(model, "pkg.data:load", budget="8KB", progress=False)
    with pytest.raises(HwsearchError, match="data as objects needs the model as an nn.Module"):
        hwsearch.search("lenet5_digits", splits, budget="8KB", progress=False)
    with pytest.raises(BudgetError):
        hwsearch.search(model, splits, budget="-5MB", progress=False)


def _crafted(tmp_path, spec: dict, dense=None) -> str:
    """A file whose checksum is right and whose header says what a crafted file could say."""
    meta = json.dumps({"format": "hwsearch-compressed", "model": spec, "layers": [], "dense": dense or []}).encode()
    body = struct.pack("<4sHI", b"HWSC", 2, len(meta)) + meta
    path = tmp_path / "crafted.hws"
    path.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    return str(path)


@pytest.mark.parametrize("builder", ["os:getpid", "tests.test_api:side_effect"])
def test_loading_a_crafted_file_never_calls_the_builder_it_names(tmp_path, builder):
    path = _crafted(tmp_path, {"builder": builder})
    with pytest.raises(ArtifactError, match=f"names the builder {builder} and loading runs no code a file names: "
                                            "pass the architecture.*or trust the builder"):
        hwsearch.load(path)
    assert MARKER == []


def test_trust_code_calls_the_builder_and_model_fills_the_architecture_given(tmp_path):
    path = _crafted(tmp_path, {"builder": "tests.test_api:side_effect"},
                    dense=[[k, "float32", list(t.shape)] for k, t in SmallNet().state_dict().items()])
    with pytest.raises(ArtifactError, match="truncated"):        # the crafted file holds no weights: it is short
        hwsearch.load(path, trust_code=True)
    assert MARKER == ["ran"]
    MARKER.clear()


@pytest.mark.parametrize("spec, dense, error", [
    ({"name": "os"}, [], "unknown model 'os'"),
    ({"name": "lenet5_digits"}, [["conv1.weight", "load", [6, 1, 5, 5]]], "dense tensor 'conv1.weight' of type 'load'"),
    ({"name": "lenet5_digits", "kwargs": {"classes": "x" * 3}}, [], "does not describe a model hwsearch can rebuild"),
    ({"nothing": 1}, [], "names no architecture"),
])
def test_a_crafted_header_is_one_artifact_error(tmp_path, spec, dense, error):
    with pytest.raises(HwsearchError, match=error):
        hwsearch.load(_crafted(tmp_path, spec, dense))


def test_inspect_reads_a_builder_file_without_running_it(tmp_path, capsys):
    path = _crafted(tmp_path, {"builder": "tests.test_api:side_effect"})
    assert cli_main(["inspect", path]) == 0
    out = capsys.readouterr().out
    assert "checksum OK, not reloaded: options per layer need its architecture, --model tests.test_api:side_effect " \
           "or --trust-code" in out
    assert MARKER == []


def test_cost_prices_every_op_of_an_object_and_of_a_name():
    report = hwsearch.cost(SmallNet(), (1, 8, 8), "cortex-a76")
    assert [l["name"] for l in report["layers"] if l["compressible"]] == ["conv1", "conv2", "fc"]
    assert report["total"]["latency_s"] == pytest.approx(sum(l["latency_s"] for l in report["layers"]))
    assert report["total"]["macs"] == 8 * 9 * 64 + 16 * 8 * 9 * 64 + 256 * 10
    by_name = hwsearch.cost("resnet18_digits", "1x8x8", "eyeriss-like", batch=2)
    assert by_name["model"] == "resnet18_digits" and by_name["batch"] == 2 and by_name["target"] == "eyeriss-like"
    with pytest.raises(HwsearchError, match="batch must be at least 1"):
        hwsearch.cost(SmallNet(), (1, 8, 8), batch=0)


def test_targets_lists_every_built_in_target_validated():
    targets = hwsearch.targets()
    assert {"cortex-a76", "eyeriss-like", "host"} <= set(targets)
    assert all(t.name == name for name, t in targets.items())
