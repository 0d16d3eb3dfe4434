"""Word-level corpora, batching and BPTT windows (egs.data.corpus)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from egs.data import corpus as corpus_mod
from egs.data.corpus import (CACHE_NAME, Corpus, Vocabulary, batchify, bptt_windows, epoch_windows,
                        get_batch)
from egs.core.errors import EGSError


@pytest.fixture(scope="module")
def ptb(data_root) -> Corpus:
    return Corpus("ptb", root=data_root)


@pytest.fixture(scope="module")
def wt2(data_root) -> Corpus:
    return Corpus("wikitext2", root=data_root)


def _tiny(root: Path, train: str, valid: str = "b a\n", test: str = "a\n") -> Path:
    """A tiny corpus in the ptb layout under ``root`` (locate only needs the three files)."""
    folder = root / "ptb"
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"{split}.txt").write_text(text, encoding="utf-8")
    return folder


# ----------------------------------------------------------------------------- real corpora

def test_ptb_sizes_and_vocabulary(ptb):
    # token counts including <eos> (AWD-LSTM/DARTS): 929,589 / 73,760 / 82,430, vocabulary 10,000
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929_589, 73_760, 82_430)
    assert len(ptb.vocab) == 10_000
    assert ptb.train.dtype == ptb.valid.dtype == ptb.test.dtype == torch.int64
    assert int(ptb.train.max()) == 9_999 and int(ptb.valid.max()) < 10_000


def test_ptb_first_tokens_in_order_of_appearance(ptb):
    first_line = ("aer banknote berlitz calloway centrust cluett fromstein gitano guterman hydro-quebec "
                  "ipo kia memotec mlx nahb punts rake regatta rubens sim snack-food ssangyong swapo "
                  "wachter").split()
    n = len(first_line)
    assert ptb.train[:n + 1].tolist() == list(range(n + 1))  # new words get the next id
    assert ptb.vocab.decode(ptb.train[:n + 1]) == first_line + ["<eos>"]
    assert ptb.vocab.index("<eos>") == n
    assert ptb.vocab.encode(["aer", "<eos>"]).tolist() == [0, n]


def test_wikitext2_sizes_and_first_tokens(wt2):
    assert len(wt2.train) == 2_088_628 and len(wt2.vocab) == 33_278
    assert (len(wt2.valid), len(wt2.test)) == (217_646, 245_569)
    # the file opens with a blank line, then " = Valkyria Chronicles III = "
    assert wt2.vocab.decode(wt2.train[:8]) == ["<eos>", "=", "Valkyria", "Chronicles", "III", "=",
                                               "<eos>", "<eos>"]
    assert wt2.train[:8].tolist() == [0, 1, 2, 3, 4, 1, 0, 0]


def test_cache_is_used_when_sources_unchanged(ptb, data_root, monkeypatch):
    assert (ptb.folder / CACHE_NAME).is_file()

    def boom(*args, **kwargs):
        raise AssertionError("re-tokenised although the cache is valid")

    monkeypatch.setattr(corpus_mod, "tokenise", boom)
    again = Corpus("ptb", root=data_root)
    assert again.from_cache
    assert again.vocab.idx2word == ptb.vocab.idx2word
    for split in ("train", "valid", "test"):
        assert again.split(split).dtype == torch.int64
        assert torch.equal(again.split(split), ptb.split(split))


# ----------------------------------------------------------------------------- vocabulary, cache, errors

def test_vocabulary_roundtrip_and_errors():
    v = Vocabulary(["b", "a", "b", "c"])
    assert len(v) == 3 and v.idx2word == ["b", "a", "c"] and v.index("c") == 2 and "a" in v
    assert v.decode(v.encode(["c", "b"])) == ["c", "b"]
    with pytest.raises(EGSError, match="'zz'"):
        v.index("zz")
    with pytest.raises(EGSError, match="3"):
        v.word(3)


def test_tiny_corpus_and_strict_vocabulary(tmp_path):
    _tiny(tmp_path, "a b\n\n c a \n")
    c = Corpus("ptb", root=tmp_path)
    assert c.vocab.idx2word == ["a", "b", "<eos>", "c"]
    assert c.train.tolist() == [0, 1, 2, 2, 3, 0, 2]  # an empty line is one <eos>
    assert c.valid.tolist() == [1, 0, 2]
    _tiny(tmp_path / "oov", "a b\n", valid="a\nb zebra\n")
    with pytest.raises(EGSError, match=r"'zebra'.*valid\.txt.*line 2"):
        Corpus("ptb", root=tmp_path / "oov")


def test_cache_invalidated_by_changed_source(tmp_path):
    folder = _tiny(tmp_path, "a b\n")
    assert not Corpus("ptb", root=tmp_path).from_cache
    assert (folder / CACHE_NAME).is_file() and Corpus("ptb", root=tmp_path).from_cache
    (folder / "train.txt").write_text("b a c\n", encoding="utf-8")  # other size -> stale cache
    c = Corpus("ptb", root=tmp_path)
    assert not c.from_cache and c.vocab.idx2word == ["b", "a", "c", "<eos>"]
    assert Corpus("ptb", root=tmp_path).from_cache


def test_corrupt_cache_is_rebuilt(tmp_path):
    folder = _tiny(tmp_path, "a b\n")
    (folder / CACHE_NAME).write_bytes(b"not a torch file")
    c = Corpus("ptb", root=tmp_path)
    assert not c.from_cache and c.train.tolist() == [0, 1, 2]
    assert Corpus("ptb", root=tmp_path).from_cache


def test_unwritable_folder_skips_cache(tmp_path, monkeypatch):
    folder = _tiny(tmp_path, "a b\n")

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system", str(folder / CACHE_NAME))

    monkeypatch.setattr(corpus_mod, "atomic_open", read_only)
    c = Corpus("ptb", root=tmp_path)
    assert c.train.tolist() == [0, 1, 2] and not (folder / CACHE_NAME).exists()


def test_unknown_or_missing_corpus(tmp_path):
    with pytest.raises(EGSError, match="'cifar10'.*ptb, wikitext2"):
        Corpus("cifar10", root=tmp_path)
    with pytest.raises(EGSError, match="'penn'"):
        Corpus("penn", root=tmp_path)
    with pytest.raises(EGSError, match="not found.*egs data fetch ptb"):
        Corpus("ptb", root=tmp_path)


# ----------------------------------------------------------------------------- batching

def test_batchify_columns_are_contiguous_streams():
    data = torch.arange(103)
    b = batchify(data, 4)
    assert b.shape == (25, 4) and b.is_contiguous()  # tail of 3 dropped
    for col in range(4):
        assert b[:, col].tolist() == list(range(25 * col, 25 * (col + 1)))
    assert batchify(data, 4, device="cpu").device.type == "cpu"


def test_batchify_real_corpus_shape(ptb):
    b = batchify(ptb.train, 64)
    assert b.shape == (929_589 // 64, 64)
    assert torch.equal(b[:, 1], ptb.train[14_524:2 * 14_524])


def test_get_batch_targets_shifted_by_one():
    src = batchify(torch.arange(100), 5)  # (20, 5)
    x, y = get_batch(src, 3, 7)
    assert x.shape == y.shape == (7, 5)
    assert torch.equal(y[:-1], x[1:]) and torch.equal(y, src[4:11])
    x, y = get_batch(src, 15, 35)  # clipped: L = min(35, 20 - 1 - 15) = 4
    assert x.shape == (4, 5) and torch.equal(y, src[16:20])


@pytest.mark.parametrize("call, match", [
    (lambda: batchify(torch.arange(10), 0), "batch_size.*0"),
    (lambda: batchify(torch.arange(10), 6), "batch_size 6 leaves 1 row"),
    (lambda: batchify(torch.zeros(2, 3), 1), r"1-D.*\(2, 3\)"),
    (lambda: get_batch(torch.zeros(10, 2), 9, 5), "start 9"),
    (lambda: get_batch(torch.zeros(10, 2), 0, 0), "seq_len.*0"),
    (lambda: epoch_windows(1000, 0, seed=0, epoch=0), "bptt.*0"),
    (lambda: epoch_windows(1, 35, seed=0, epoch=0), "n_tokens.*1"),
    (lambda: list(bptt_windows(100, 35, generator=None)), "Generator"),
])
def test_bad_batching_inputs(call, match):
    with pytest.raises(EGSError, match=match):
        call()


# ----------------------------------------------------------------------------- BPTT windows

def _assert_cover(windows: list[tuple[int, int]], n: int) -> None:
    starts = [s for s, _ in windows]
    assert starts[0] == 0
    assert all(s + l == nxt for (s, l), nxt in zip(windows, starts[1:]))  # cumulative, no overlap
    assert windows[-1][0] + windows[-1][1] == n - 1  # every target row used once


def test_epoch_windows_variable():
    n, bptt = 929_589 // 64, 35
    w = epoch_windows(n, bptt, seed=1, epoch=0)
    assert w == epoch_windows(n, bptt, seed=1, epoch=0)  # pure function of (seed, epoch)
    assert w != epoch_windows(n, bptt, seed=1, epoch=1)
    assert w != epoch_windows(n, bptt, seed=2, epoch=0)
    _assert_cover(w, n)
    lengths = [l for _, l in w]
    assert all(5 <= l <= bptt + 20 for l in lengths[:-1]) and 1 <= lengths[-1] <= bptt + 20
    assert len(set(lengths)) > 10 and 32 < sum(lengths) / len(lengths) < 36  # ~ 0.95*35 + 0.05*17.5
    short = epoch_windows(500, bptt, seed=1, epoch=0)  # lengths do not depend on n_tokens
    assert short[:-1] == w[:len(short) - 1]


def test_epoch_windows_cap_and_fixed():
    _assert_cover(w := epoch_windows(5000, 35, seed=0, epoch=3, max_delta=0), 5000)
    assert max(l for _, l in w) == 35
    fixed = epoch_windows(100, 35, seed=7, epoch=9, variable=False)
    assert fixed == [(0, 35), (35, 35), (70, 29)]
    assert fixed == epoch_windows(100, 35, seed=0, epoch=0, variable=False)
