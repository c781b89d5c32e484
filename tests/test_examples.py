"""The README's examples run as shown: examples/api.py prints what the README says it prints."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shown_code() -> str:
    """examples/api.py from `import hwsearch` on, as the README shows it."""
    text = (ROOT / "examples" / "api.py").read_text()
    return text[text.index("import hwsearch"):].rstrip()


def test_the_readme_shows_the_api_example_as_it_is():
    assert shown_code() in (ROOT / "README.md").read_text()


def test_the_api_example_runs_and_prints_its_results(tmp_path):
    env = {**os.environ, "HWSEARCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "api.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    size, before, after = re.fullmatch(r"([\d,]+) bytes, macro F1 ([\d.]+)% -> ([\d.]+)%, [\d.]+ us predicted on the "
                                       r"A76", lines[0]).groups()
    assert int(size.replace(",", "")) <= 50_000 and float(after) >= float(before) - 2
    assert [line.split()[0] for line in lines[1:6]] == ["features.0", "features.3", "features.7", "classifier.1",
                                                        "classifier.3"]
    assert re.fullmatch(r"front: \d+ plans from [\d,]+ to [\d,]+ B", lines[6])
    assert lines[7] == f"saved results/api-example; reloaded F1 {after}%"
    assert (tmp_path / "results" / "api-example" / "model.hws").stat().st_size == int(size.replace(",", ""))
    assert lines[8].startswith("uncompressed on eyeriss-like: ") and lines[9].startswith("10 targets: a100, ")
    assert proc.stderr == ""
