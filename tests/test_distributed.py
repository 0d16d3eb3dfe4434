"""Data-parallel runs under torchrun (gloo, 2 CPU processes) and the helpers of egs.engine.distributed.

One torchrun launch (tests/dist_worker.py) runs smoke-sized conv search, conv training, recurrent
search and language-model training; the tests compare what the two ranks did at every step, what
they wrote, and what a single process does with the same global batch and seed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from egs.engine import distributed
from egs.data.cifar import TensorBatches
from egs.core.errors import EGSError
from egs.arch.genotype import load_genotype
from egs.profiles.experiments import settings
from egs.conv.search import Search

ROOT = Path(__file__).resolve().parent.parent
SEARCH = settings("search", "smoke", micro_batch=4)  # as in dist_worker.py: BatchNorm over 4 images
SMOKE_STEPS = SEARCH.epochs * (SEARCH.train_size // SEARCH.batch_size)
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")


def torchrun(*args: str, env_extra: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("ddp")
    with torch.random.fork_rng():  # a 1-process run stopped mid-epoch, for the 2 processes to resume
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            Search(SEARCH, out / "search_from_one", data_root=data_root, progress=False).run(stop_after_steps=4)
        except KeyboardInterrupt:
            pass
        finally:
            torch.set_num_threads(threads)
    done = torchrun("tests/dist_worker.py", str(out), env_extra={"EGS_DATA_DIR": str(data_root)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    traces = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    return out, traces


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("run", ["search", "rnn_search"])
def test_ranks_sample_the_same_codes_from_the_same_logits_at_every_step(ranks, run):
    _, (r0, r1) = ranks
    assert r0["world"] == r1["world"] == 2 and (r0["rank"], r1["rank"]) == (0, 1)
    steps0, steps1 = r0["steps"][run], r1["steps"][run]
    assert len(steps0) == len(steps1) > 0
    if run == "search":
        assert len(steps0) == SMOKE_STEPS
    for s0, s1 in zip(steps0, steps1):
        assert _same(s0["codes"], s1["codes"]) and _same(s0["logits"], s1["logits"])
    assert not all(_same(steps0[0]["logits"], s["logits"]) for s in steps0)  # the logits did train


def test_weights_stay_in_sync(ranks):
    _, (r0, r1) = ranks
    assert set(r0["weights"]) == {"search", "search_from_one", "train", "rnn_search", "lm"}
    for name in r0["weights"]:
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name


def test_only_rank_zero_writes(ranks):
    out, (r0, r1) = ranks
    assert r1["writes"] == []
    written = {Path(p).relative_to(out).as_posix() for p in r0["writes"]}
    for run in ("search", "train", "rnn_search", "lm"):
        for name in ("config.json", "metrics.jsonl", "checkpoint.pt", "summary.json"):
            assert f"{run}/{name}" in written, (run, name)
    assert "search/genotypes/epoch_002.json" in written
    summary = json.loads((out / "search" / "summary.json").read_text())
    assert summary["processes"] == 2


def test_a_rank_whose_logits_drift_stops_the_run_on_every_rank(ranks):
    _, (r0, r1) = ranks
    for trace in (r0, r1):
        assert trace["drift_error"] and "differ between the 2 processes" in trace["drift_error"]
        assert "epoch 1, step 1" in trace["drift_error"]


class _Traced(Search):
    def __init__(self, *args, **kw):
        self.steps = []
        super().__init__(*args, **kw)

    def sample(self):
        codes = super().sample()
        self.steps.append({"codes": [c.detach().clone() for c in codes.values()],
                           "logits": [a.detach().clone() for a in self.model.arch_parameters()]})
        return codes


def _params(state: dict) -> dict:
    """Parameters only: BatchNorm running statistics follow rank 0's micro-batches, not all of them."""
    return {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k}


def test_two_processes_search_exactly_like_one_with_the_same_global_batch(ranks, tmp_path, data_root, one_thread):
    """Same global batch, seed and micro_batch: the same codes at every step, bit-identical logits and
    weights, the same genotype. (With micro_batch=0 BatchNorm would see 4 images per rank instead of
    8 in one process, and the runs would differ.)"""
    out, (r0, _) = ranks
    single = _Traced(SEARCH, tmp_path / "single", data_root=data_root, progress=False)
    single.run()
    assert len(single.steps) == len(r0["steps"]["search"])
    for s, d in zip(single.steps, r0["steps"]["search"]):
        assert _same(s["codes"], d["codes"]) and _same(s["logits"], d["logits"])
    two = _params(torch.load(out / "search" / "checkpoint.pt", weights_only=False)["model"])
    one = _params(single.model.state_dict())
    assert two.keys() == one.keys() and all(torch.equal(one[k], two[k]) for k in one)
    assert load_genotype(tmp_path / "single" / "genotype.json") == load_genotype(out / "search" / "genotype.json")


def test_one_process_resumes_a_two_process_checkpoint_exactly(ranks, data_root, one_thread):
    out, _ = ranks
    run = Search(SEARCH, out / "search_interrupted", resume=True, data_root=data_root, progress=False)
    assert (run.epoch, run.step) == (0, 4)
    run.run()
    full = _params(torch.load(out / "search" / "checkpoint.pt", weights_only=False)["model"])
    resumed = _params(run.model.state_dict())
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert [r["type"] for r in run.log.read()] == [r["type"] for r in
                                                   map(json.loads, (out / "search" / "metrics.jsonl").read_text().splitlines())]


def test_two_processes_resume_a_one_process_checkpoint_exactly(ranks):
    out, _ = ranks
    full = _params(torch.load(out / "search" / "checkpoint.pt", weights_only=False)["model"])
    resumed = _params(torch.load(out / "search_from_one" / "checkpoint.pt", weights_only=False)["model"])
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert json.loads((out / "search_from_one" / "summary.json").read_text())["processes"] == 2


def test_one_process_resumes_a_two_process_language_model(ranks, data_root, one_thread):
    """The hidden state of both ranks' streams is in the checkpoint; one process carries all of them."""
    from egs.arch.published import DARTS_V2_RNN
    from egs.rnn.train import LMTrainer
    out, _ = ranks
    run = LMTrainer(settings("lm_train_ptb", "smoke"), DARTS_V2_RNN, out / "lm_interrupted", resume=True,
                    data_root=data_root, progress=False)
    assert run.hidden.value.shape[1] == run.cfg.batch_size and run.step == 3
    summary = run.run()
    assert summary["processes"] == 1 and summary["test_ppl"] > 1


def test_cli_trains_under_torchrun(tmp_path, data_root):
    run_dir = tmp_path / "train"
    done = torchrun("-m", "egs", "train", "DARTS_V2", "--profile", "smoke", "--run-dir", str(run_dir),
                    "--no-progress", "--set", "micro_batch=2", env_extra={"EGS_DATA_DIR": str(data_root)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count('"test_top1_err"') == 1  # the summary is printed once, by rank 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["batch_per_process"] == settings("train_cifar", "smoke").batch_size // 2


def test_cli_reports_an_uneven_global_batch_without_traceback(tmp_path, data_root):
    done = torchrun("-m", "egs", "search", "--profile", "smoke", "--run-dir", str(tmp_path / "s"), "--no-progress",
                    "--set", "batch_size=7", env_extra={"EGS_DATA_DIR": str(data_root)})
    assert done.returncode != 0
    assert done.stderr.count("egs: error: batch_size=7 must split evenly over 2 processes") == 2  # each rank
    assert str(ROOT / "egs") not in done.stderr  # no traceback through egs (torchrun prints its own)


# ------------------------------------------------------------------ single-process helpers

def test_helpers_are_no_ops_in_one_process():
    ctx = distributed.Context()
    assert ctx.main and not ctx.active
    assert distributed.all_sum([1, 2.5], ctx, torch.device("cpu")) == [1.0, 2.5]
    assert distributed.shard(8, ctx) == slice(0, 8)
    distributed.check_identical([torch.ones(3)], "x", "here", ctx, torch.device("cpu"))


def test_shards_partition_the_global_batch():
    a, b = distributed.Context(0, 2), distributed.Context(1, 2)
    assert (distributed.shard(8, a), distributed.shard(8, b)) == (slice(0, 4), slice(4, 8))
    with pytest.raises(EGSError, match="batch_size=9 is the global batch and must be divisible by the 2"):
        distributed.local_batch(9, a)


def test_sharded_batches_are_the_rows_of_the_global_batch():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    full = TensorBatches(images, labels, 8, augment=True, seed=3, cutout=4)
    parts = [TensorBatches(images, labels, 8, augment=True, seed=3, cutout=4, shard=(r, 2)) for r in (0, 1)]
    for (x, y), (x0, y0), (x1, y1) in zip(full.batches(1), parts[0].batches(1), parts[1].batches(1)):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    with pytest.raises(EGSError, match="batch_size=8 must split evenly over 3 processes"):
        TensorBatches(images, labels, 8, augment=True, seed=3, shard=(0, 3))


def test_dealt_evaluation_batches_are_the_whole_batches_round_robin():
    images = torch.randint(0, 256, (21, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(21) % 10
    full = list(TensorBatches(images, labels, 4, augment=False, seed=0, drop_last=False).batches(0))
    dealt = [list(TensorBatches(images, labels, 4, augment=False, seed=0, drop_last=False, deal=(r, 2)).batches(0))
             for r in (0, 1)]
    assert [len(d) for d in dealt] == [3, 3] and len(full) == 6  # the last batch holds 1 image
    for i, (x, y) in enumerate(full):
        xd, yd = dealt[i % 2][i // 2]
        assert torch.equal(x, xd) and torch.equal(y, yd)


def test_fingerprint_sees_any_change_and_the_order():
    t = torch.arange(6.0)
    assert torch.equal(distributed.fingerprint([t]), distributed.fingerprint([t.clone()]))
    assert not torch.equal(distributed.fingerprint([t]), distributed.fingerprint([t.flip(0)]))
    bumped = t.clone()
    bumped[3] += 1e-6
    assert not torch.equal(distributed.fingerprint([t]), distributed.fingerprint([bumped]))


def test_linear_lr_scaling_is_explicit():
    assert distributed.scaled_lr(0.025, 768, 0) == 0.025
    assert distributed.scaled_lr(0.025, 768, 96) == pytest.approx(0.2)
    with pytest.raises(EGSError, match="lr_reference_batch=-1"):
        distributed.scaled_lr(0.1, 8, -1)


def test_micro_batches_must_divide_the_batch(tmp_path, data_root, one_thread):
    run = Search(settings("search", "smoke", micro_batch=3), tmp_path / "s", data_root=data_root, progress=False)
    with pytest.raises(EGSError, match="micro_batch=3 must divide the per-process batch of 8 rows"):
        run.run()


def test_imagenet_batches_shard_and_deal_like_tensor_batches(tmp_path):
    from conftest import make_image_folder
    from egs.data.imagenet import FolderBatches
    folder = make_image_folder(tmp_path, classes=3, per_class=5, size=36) / "imagenet"
    kw = dict(seed=1, image_size=32, workers=0)
    full = list(FolderBatches(folder / "train", 4, train=True, **kw).batches(0))
    parts = [list(FolderBatches(folder / "train", 4, train=True, shard=(r, 2), **kw).batches(0)) for r in (0, 1)]
    assert len(full) == 3 and all(len(p) == 3 for p in parts)
    for (_, y), (_, y0), (_, y1) in zip(full, *parts):
        assert torch.equal(torch.cat([y0, y1]), y)  # the same images, split in rows (augmentation is random)
    val = list(FolderBatches(folder / "val", 4, train=False, **kw).batches(0))
    dealt = [list(FolderBatches(folder / "val", 4, train=False, deal=(r, 2), **kw).batches(0)) for r in (0, 1)]
    assert [len(d) for d in dealt] == [2, 2] and len(val) == 4
    for i, (x, y) in enumerate(val):
        assert torch.equal(x, dealt[i % 2][i // 2][0]) and torch.equal(y, dealt[i % 2][i // 2][1])
