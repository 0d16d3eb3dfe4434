"""Every notebook runs under papermill at the `smoke` profile and writes what it promises."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import papermill
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# What each notebook must write (figures into figures_dir, tables into tables_dir).
EXPECTED = {
    "01_sampling_distribution": {
        "figures": ["fig1_gumbel_vs_ensemble.png", "fig1_gumbel_vs_ensemble.pdf",
                    "prop2_inclusion_probability.png", "num_active_ops_K8.png"],
        "tables": ["01_fig1_codes.csv", "01_prop2_inclusion.csv", "01_prop3_num_codes.csv",
                   "01_num_active_ops.csv"],
    },
    "02_cifar10_search": {
        "figures": ["02_search_curves.png", "02_p_evolution.png", "fig3a_normal_cell.png",
                    "fig3a_normal_cell.svg", "fig3b_reduction_cell.png"],
        "tables": ["02_search_summary.csv"],
        "outputs": {"run_dir": "run", "genotype_out": "genotype.json"},
    },
    "03_cifar10_evaluation": {
        "figures": ["03_eval_curves.png"],
        "tables": ["table1_cifar10.md", "table1_cifar10.csv"],
        "outputs": {"run_root": "runs"},
        "inputs": {"genotype": "random"},
    },
    "04_imagenet_transfer": {
        "figures": [],
        "tables": ["table2_imagenet.md", "table2_imagenet.csv"],
        "outputs": {"run_root": "runs"},
        "inputs": {"genotype": "DARTS_V1", "imagenet_dir": "IMAGENET"},
        "contains": {"table2_imagenet.md": "trained at this profile"},
    },
    "05_ptb": {
        "figures": ["05_rnn_search_curves.png", "fig3c_recurrent_cell.png", "fig3c_recurrent_cell.svg"],
        "tables": ["table3_ptb.md", "table3_ptb.csv"],
        "outputs": {"run_root": "runs", "genotype_out": "rnn_genotype.json"},
    },
    "06_wikitext2_transfer": {
        "figures": [],
        "tables": ["table4_wikitext2.md", "table4_wikitext2.csv"],
        "outputs": {"run_root": "runs"},
        "inputs": {"genotype": "DARTS_V2_RNN_JSON"},
    },
}


def make_image_folder(root: Path, classes: int = 3, per_class: int = 4, size: int = 40) -> Path:
    """A tiny ImageNet-like tree ``root/imagenet/{train,val}/<class>/*.png`` of random images."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / "imagenet" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def test_every_notebook_is_covered():
    assert {nb.stem for nb in NOTEBOOKS} == set(EXPECTED)


def test_notebooks_are_committed_clean_and_parameterised():
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), path.name
        assert any("parameters" in c["metadata"].get("tags", []) for c in code), path.name


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke(path, tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("EGS_DATA_DIR", str(data_root))
    figures, tables = tmp_path / "figures", tmp_path / "tables"
    outputs = {k: str(tmp_path / v) for k, v in EXPECTED[path.stem].get("outputs", {}).items()}
    inputs = dict(EXPECTED[path.stem].get("inputs", {}))
    if inputs.get("imagenet_dir") == "IMAGENET":
        inputs["imagenet_dir"] = str(make_image_folder(tmp_path / "imagenet_root"))
    if inputs.get("genotype") == "DARTS_V2_RNN_JSON":
        from egs.genotype import DARTS_V2_RNN, save_genotype
        inputs["genotype"] = str(save_genotype(DARTS_V2_RNN, tmp_path / "darts_v2_rnn.json"))
    papermill.execute_notebook(str(path), str(tmp_path / path.name), cwd=str(path.parent),
                               parameters={"profile": "smoke", "figures_dir": str(figures),
                                           "tables_dir": str(tables), **outputs, **inputs},
                               kernel_name="python3", progress_bar=False)
    for name in EXPECTED[path.stem]["figures"]:
        assert (figures / name).stat().st_size > 1000, name
    for name in EXPECTED[path.stem]["tables"]:
        assert (tables / name).is_file(), name
    for name in EXPECTED[path.stem].get("outputs", {}).values():
        assert (tmp_path / name).exists(), name
    for name, text in EXPECTED[path.stem].get("contains", {}).items():
        assert text in (tables / name).read_text(), name


def test_notebook01_figure1_numbers(tmp_path):
    """The Figure 1 table the notebook writes holds the exact EGS probabilities for p = [0.5, 0.5]."""
    path = ROOT / "notebooks" / "01_sampling_distribution.ipynb"
    papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), cwd=str(path.parent),
                               parameters={"profile": "smoke", "figures_dir": str(tmp_path),
                                           "tables_dir": str(tmp_path), "prop_Ks": [3], "prop_Ms": [1, 2]},
                               kernel_name="python3", progress_bar=False)
    rows = list(csv.DictReader(open(tmp_path / "01_fig1_codes.csv")))
    m2 = {r["code"]: float(r["exact"]) for r in rows if r["M"] == "2"}
    assert m2 == {"[1,0]": 0.25, "[0,1]": 0.25, "[1,1]": 0.5}
    prop3 = list(csv.DictReader(open(tmp_path / "01_prop3_num_codes.csv")))
    assert [(r["K"], r["M"], r["exact support"]) for r in prop3] == [("3", "1", "3"), ("3", "2", "6")]
