"""`egs derive` on a search run: the select rule's record, and the guards against damaged or foreign runs."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from egs.core.errors import EGSError
from egs.arch.genotype import Genotype, load_genotype
from egs.rnn.search import RNNSearch
from egs.profiles.experiments import settings
from egs.repro.prose import arch_choices
from egs.engine.runs import compare_rules, derive, derive_with_record

pytestmark = pytest.mark.usefixtures("one_thread")
SEARCH = settings("rnn_search", "smoke", epochs=1, select_candidates=3, select_batches=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_root):
    """Two finished smoke searches: ``a`` (the smoke M, seed 0) and ``b`` (M = 3, seed 5)."""
    root = tmp_path_factory.mktemp("derive")
    RNNSearch(SEARCH, root / "a", data_root=data_root, progress=False).run()
    RNNSearch(settings("rnn_search", "smoke", epochs=1, M=3, seed=5), root / "b", data_root=data_root,
              progress=False).run()
    return root


def _copy(runs, tmp_path, name="a"):
    return shutil.copytree(runs / name, tmp_path / name, ignore=shutil.ignore_patterns(".lock"))


def test_select_records_every_candidate_beside_the_node_cell(runs, tmp_path, data_root):
    d = _copy(runs, tmp_path)
    own = (d / "derivation.json").read_text()
    genotype, record = derive_with_record(d, "select", data_root=data_root)
    assert (d / "derivation.json").read_text() == own == '{\n  "rule": "node"\n}\n'  # the run's own record stays
    stored = json.loads((d / "derivation-select.json").read_text())
    assert stored == json.loads(json.dumps(record))
    assert [c["index"] for c in stored["candidates"]] == [0, 1, 2] and stored["select_batches"] == 2
    best = max(stored["candidates"], key=lambda c: (c["score"], -c["index"]))
    assert stored["chosen"] == best["index"] and stored["chosen_score"] == best["score"]
    assert genotype == Genotype.from_dict(best["genotype"]) and genotype.provenance["rule"] == "select"
    assert all(c["score"] < 0 for c in stored["candidates"]) and stored["node_score"] < 0  # minus NLL per token
    assert "perplexity" in stored["score"]
    line = record["summary"]
    assert f"chosen candidate {best['index']} of 3, search-val perplexity {math.exp(-best['score']):.2f}" in line
    assert f"node cell: search-val perplexity {math.exp(-stored['node_score']):.2f}" in line
    again, record2 = derive_with_record(d, "select", data_root=data_root)  # seeded: the same candidates and scores
    assert again == genotype and record2 == record
    node, node_record = derive_with_record(d, "node")
    assert node_record == {"rule": "node"} and node == load_genotype(d / "genotype.json")


def _without_copies(d):
    """Make ``d``'s checkpoint one of an older egs, which kept no copies of config.json and run.json."""
    state = torch.load(d / "checkpoint.pt", weights_only=False)
    assert isinstance(state.pop("record"), dict) and isinstance(state.pop("run"), dict)
    torch.save(state, d / "checkpoint.pt")


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").unlink(), "config.json is missing"),
    (lambda d: (d / "config.json").write_text('{"M": 4,'), "config.json is damaged"),
    (lambda d: (d / "config.json").write_text("[4]"), r"config.json is damaged \(not a JSON object\)"),
    (lambda d: (d / "run.json").unlink(), "run.json is missing"),
])
def test_derive_reads_the_checkpoints_copy_of_a_damaged_file_or_refuses(runs, tmp_path, capsys, damage, message):
    d = _copy(runs, tmp_path)
    damage(d)
    assert derive(d, "node") == derive(runs / "a", "node")  # the checkpoint's copy, as resume reads it
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and message.split(" is ")[0] in warning and "checkpoint's copy" in warning
    _without_copies(d)
    with pytest.raises(EGSError, match=f"cannot derive: .*{message}") as err:
        derive(d, "node")
    assert "\n" not in str(err.value) and str(d) in str(err.value)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").write_text('{"M": 4, "wings": 2}'), "config.json does not hold"),
    (lambda d: (d / "checkpoint.pt").write_bytes(b"\x00" * 10), "checkpoint.pt is damaged"),
])
def test_derive_refuses_a_damaged_run_with_one_line(runs, tmp_path, damage, message):
    d = _copy(runs, tmp_path)
    damage(d)
    with pytest.raises(EGSError, match=message) as err:
        derive(d, "node")
    assert "\n" not in str(err.value) and str(d) in str(err.value)


def test_derive_refuses_another_runs_checkpoint(runs, tmp_path):
    d = _copy(runs, tmp_path)
    shutil.copy(runs / "b" / "checkpoint.pt", d / "checkpoint.pt")  # M = 3, seed 5 in the M = 4 run
    for rule in ("node", "select"):
        with pytest.raises(EGSError, match=r"checkpoint.pt belongs to run \w+, but .* is run \w+"):
            derive(d, rule)
    shutil.copy(runs / "b" / "run.json", d / "run.json")  # its identity too: the settings still differ
    with pytest.raises(EGSError, match="written with other settings than .*config.json"):
        derive(d, "edge")
    b = derive(runs / "b", "node")  # the other run itself derives with its own provenance
    assert (b.provenance["M"], b.provenance["seed"]) == (3, 5)


def test_compare_rules_scores_every_rules_cell_on_the_same_windows(runs, tmp_path, data_root):
    d = _copy(runs, tmp_path)
    rows = {r["rule"]: r for r in compare_rules(d, data_root=data_root)}
    assert list(rows) == ["node", "select", "edge"]
    record = json.loads((d / "derivation-select.json").read_text())  # select's record, as derive writes it
    # the perplexity on the select windows is exp(-score): the chosen candidate's and the node cell's scores
    assert rows["select"]["select_ppl"] == pytest.approx(math.exp(-record["chosen_score"]), rel=1e-9)
    assert rows["node"]["select_ppl"] == pytest.approx(math.exp(-record["node_score"]), rel=1e-9)
    assert all(r["heldout_ppl"] > 1 and r["ops"] == r["genotype"].num_active_ops() for r in rows.values())
    assert rows["node"]["genotype"] == derive(d, "node") and rows["edge"]["genotype"] == derive(d, "edge")


def test_arch_choices_follow_the_settings():
    paper = arch_choices(settings("search", "paper"))
    assert "weight decay 0.001 (DARTS's 1e-3)" in paper[0] and "softmax(alpha)" in paper[1]
    assert paper[2].startswith("Regulariser: none") and "constant tau = 1" in paper[3]
    authors = arch_choices(settings("search", "paper", effectiveness="relu", arch_reg=0.1, arch_weight_decay=0.0,
                                    tau_schedule="linear", tau_start=2.0, tau_end=0.5, rule="select"))
    assert "(the authors' 0)" in authors[0] and "relu(alpha)" in authors[1]
    assert authors[2].startswith("Regulariser: 0.1 * mean |h - c / sum c|") and '"none" included' in authors[2]
    assert "on h, not on p" in authors[2] and "linear from 2 to 0.5" in authors[3]
    assert authors[4].startswith("Derivation rule `select`; the `select` rule draws 32 candidates")


def test_the_cli_derives_every_rule_and_prints_the_selection(runs, tmp_path, data_root):
    """`egs derive RUN --method node|edge|select`: the genotype on stdout, and for select one more line with the
    chosen candidate's score beside the node cell's (the record in derivation-select.json)."""
    import os
    import subprocess
    import sys
    d = _copy(runs, tmp_path)
    env = {**os.environ, "EGS_DATA_DIR": str(data_root)}
    printed = {}
    for method in ("node", "edge", "select"):
        out = subprocess.run([sys.executable, "-m", "egs", "derive", str(d), "--method", method], capture_output=True,
                             text=True, env=env, timeout=300)
        assert out.returncode == 0 and not out.stderr, out.stderr
        printed[method] = out.stdout
    assert printed["node"] == f"{derive(d, 'node')}\n" and printed["edge"] == f"{derive(d, 'edge')}\n"
    record = json.loads((d / "derivation-select.json").read_text())
    chosen = Genotype.from_dict(record["candidates"][record["chosen"]]["genotype"])
    assert printed["select"] == f"{chosen}\n{record['summary']}\n"
    assert record["summary"].startswith("select: chosen candidate")
