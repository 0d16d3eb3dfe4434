"""Word-level language-model corpora (PTB, WikiText-2) and AWD-LSTM-style batching.

The recurrent experiments follow DARTS, which follows AWD-LSTM (Merity et al., 2018):

* every line of a split becomes ``line.split() + ["<eos>"]``; the vocabulary is built from the train
  split only, ids in order of first appearance; valid/test must not hold words outside it;
* a token stream is cut into ``B`` contiguous streams, one per column (:func:`batchify`);
* training walks the rows with variable-length BPTT windows (:func:`epoch_windows`), evaluation
  with fixed windows of ``bptt`` (``variable=False``).

Learning-rate rescaling is the training loop's job: AWD-LSTM/DARTS scale the step size of each window
by ``seq_len / bptt`` (``lr * seq_len / bptt``) so that short windows do not take full-size steps,
and restore ``lr`` afterwards. Windows are a pure function of ``(n_tokens, bptt, seed, epoch)``, so a
loop that checkpoints the index ``s`` of its next window resumes exactly by recomputing the epoch's
windows and skipping the first ``s``.

Tokenised splits are cached beside the data in ``.egs-corpus-v1.pt`` (keyed by the source files'
sizes and mtimes); a read-only data folder just means no cache.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from collections.abc import Iterable, Iterator

import torch

from egs.data.fetch import corpus_files
from egs.core.checks import check_int
from egs.core.errors import EGSError
from egs.core.files import atomic_open

EOS = "<eos>"
CORPORA = ("ptb", "wikitext2")
SPLITS = ("train", "valid", "test")
CACHE_NAME = ".egs-corpus-v1.pt"
CACHE_VERSION = 1
MAX_SEQ_LEN_DELTA = 20  # DARTS/AWD-LSTM --max_seq_len_delta: variable windows are capped at bptt + 20
_CHUNK = 1024  # window lengths are drawn in blocks of this size (fixed: keeps draws independent of n)


class Vocabulary:
    """A bijection word <-> id; ids are given in order of first appearance."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []
        for w in words:
            self.add(w)

    def add(self, word: str) -> int:
        """The id of ``word``, adding it at the end if new."""
        idx = self.word2idx.get(word)
        if idx is None:
            idx = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: object) -> bool:
        return word in self.word2idx

    def index(self, word: str) -> int:
        """The id of ``word``; :class:`EGSError` if it is not in the vocabulary."""
        if word not in self.word2idx:
            raise EGSError(f"word {word!r} is not in the vocabulary ({len(self)} words); "
                           "use a word from the train split (rare words are spelled <unk>).")
        return self.word2idx[word]

    def word(self, idx: int) -> str:
        """The word of id ``idx``."""
        if not 0 <= int(idx) < len(self):
            raise EGSError(f"token id {idx} is out of range; ids run from 0 to {len(self) - 1}.")
        return self.idx2word[int(idx)]

    def encode(self, words: Iterable[str]) -> torch.Tensor:
        """int64 ids of ``words``."""
        return torch.tensor([self.index(w) for w in words], dtype=torch.int64)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Words of ``ids``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        return [self.word(i) for i in ids]


# ----------------------------------------------------------------------------- corpus

def tokenise(path: Path, vocab: Vocabulary, grow: bool) -> torch.Tensor:
    """int64 ids of ``path``, each line read as ``line.split() + ["<eos>"]``.

    With ``grow`` new words are added to ``vocab`` (the train split); otherwise a word outside it
    raises :class:`EGSError` naming the word, the file and the line.
    """
    try:
        return _tokenise(path, vocab, grow)
    except UnicodeDecodeError as err:
        raise EGSError(f"{path} is damaged (not UTF-8 text: {err.reason} at byte {err.start}); fetch it again with "
                       f"`egs data fetch {path.parent.name.replace('-', '')} --force`.") from None


def _tokenise(path: Path, vocab: Vocabulary, grow: bool) -> torch.Tensor:
    w2i = vocab.word2idx
    ids: list[int] = []
    with open(path, encoding="utf-8") as f:  # text mode, universal newlines, as AWD-LSTM reads it
        for lineno, line in enumerate(f, 1):
            words = line.split()
            words.append(EOS)
            if grow:
                ids.extend([w2i.setdefault(w, len(w2i)) for w in words])
            else:
                try:
                    ids.extend([w2i[w] for w in words])
                except KeyError as err:
                    raise EGSError(
                        f"word {err.args[0]!r} in {path} (line {lineno}) is not in the train vocabulary; "
                        "valid/test words must all occur in train.txt (rare words spelled <unk>). "
                        "The file is not the expected release: fetch it again with "
                        "`python -m egs data fetch NAME --force`.") from None
    if grow:
        vocab.idx2word.extend(list(w2i)[len(vocab.idx2word):])
    return torch.tensor(ids, dtype=torch.int64)


def _source_key(files: dict[str, Path]) -> dict[str, tuple[int, int]]:
    """``{split: (size, mtime_ns)}`` of the source files (symlinks followed)."""
    key = {}
    for split, path in files.items():
        st = os.stat(path)
        key[split] = (st.st_size, st.st_mtime_ns)
    return key


class Corpus:
    """Train/valid/test token streams of ``ptb`` or ``wikitext2`` and their vocabulary.

    ``train``, ``valid`` and ``test`` are 1-D int64 tensors; ``vocab`` comes from train only.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None, cache: bool = True) -> None:
        if name not in CORPORA:
            raise EGSError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}.")
        self.name = name
        self.files = corpus_files(name, root)
        self.folder = self.files["train"].parent
        self.cache_path = self.folder / CACHE_NAME
        key = _source_key(self.files)
        loaded = self._load_cache(key) if cache else None
        self.from_cache = loaded is not None
        if loaded is None:
            self.vocab = Vocabulary()
            streams = {split: tokenise(self.files[split], self.vocab, grow=split == "train")
                       for split in SPLITS}
            if cache:
                self._write_cache(key, streams)
        else:
            self.vocab, streams = loaded
        self.train: torch.Tensor = streams["train"]
        self.valid: torch.Tensor = streams["valid"]
        self.test: torch.Tensor = streams["test"]

    def __repr__(self) -> str:
        return (f"Corpus({self.name!r}: vocab {len(self.vocab)}, train {len(self.train)}, "
                f"valid {len(self.valid)}, test {len(self.test)} tokens)")

    def split(self, name: str) -> torch.Tensor:
        """The token stream of split ``name`` (train, valid or test)."""
        if name not in SPLITS:
            raise EGSError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}.")
        return getattr(self, name)

    def _load_cache(self, key: dict[str, tuple[int, int]]) -> tuple[Vocabulary, dict[str, torch.Tensor]] | None:
        """The cached vocabulary and streams, or None if absent, stale or unreadable."""
        if not self.cache_path.is_file():
            return None
        try:
            blob = torch.load(self.cache_path, map_location="cpu", weights_only=True)
            if (blob.get("version") != CACHE_VERSION or blob.get("corpus") != self.name
                    or {s: tuple(v) for s, v in blob["sources"].items()} != key):
                return None
            vocab = Vocabulary()
            vocab.idx2word = list(blob["words"])
            vocab.word2idx = {w: i for i, w in enumerate(vocab.idx2word)}
            streams = {s: blob[s].to(torch.int64) for s in SPLITS}
        except Exception:  # a torn, foreign or old-format file is just a cache miss
            return None
        if len(vocab.word2idx) != len(vocab.idx2word):
            return None
        return vocab, streams

    def _write_cache(self, key: dict[str, tuple[int, int]], streams: dict[str, torch.Tensor]) -> None:
        blob = {"version": CACHE_VERSION, "corpus": self.name,
                "sources": {s: list(v) for s, v in key.items()}, "words": list(self.vocab.idx2word)}
        blob.update({s: t.to(torch.int32) for s, t in streams.items()})  # halves the file; ids < 2**31
        try:
            with atomic_open(self.cache_path, "wb") as f:
                torch.save(blob, f)
        except OSError:  # read-only data folder (or full disk): run without a cache
            pass


# ----------------------------------------------------------------------------- batching

def batchify(data: torch.Tensor, batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Cut a 1-D stream into ``batch_size`` contiguous streams, one per column: shape ``(T, B)``.

    The tail that does not fill a row is dropped (AWD-LSTM): column ``b`` is
    ``data[b*T:(b+1)*T]`` with ``T = len(data) // B``.
    """
    batch_size = check_int(batch_size, "batch_size", 1, "pass e.g. 64 (train) or 10 (eval)")
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise EGSError(f"batchify takes a 1-D token tensor, got {shape}; pass corpus.train/valid/test.")
    rows = data.numel() // batch_size
    if rows < 2:
        raise EGSError(f"batch_size {batch_size} leaves {rows} row(s) of a {data.numel()}-token stream; "
                       "need at least 2 (an input and its target): use a smaller batch_size.")
    out = data[:rows * batch_size].view(batch_size, rows).t().contiguous()
    return out if device is None else out.to(device)


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``source[i:i+L]`` and targets ``source[i+1:i+1+L]``, ``L = min(seq_len, len(source)-1-i)``."""
    seq_len = check_int(seq_len, "seq_len", 1, "pass the window length from epoch_windows")
    n, fix = len(source), "use the starts that epoch_windows gives"
    if check_int(i, "window start", 0, fix) > n - 2:
        raise EGSError(f"window start {i!r} is outside 0..{n - 2} for a source of {n} rows; {fix}.")
    length = min(seq_len, n - 1 - i)
    return source[i:i + length], source[i + 1:i + 1 + length]


def _check_windows(n_tokens: int, bptt: int) -> None:
    check_int(bptt, "bptt", 1, "pass e.g. 35 (the DARTS/AWD-LSTM value)")
    check_int(n_tokens, "n_tokens", 2, "it counts the rows of the batchified source: pass len(batchify(...))")


def bptt_windows(n_tokens: int, bptt: int, generator: torch.Generator | None = None,
                 variable: bool = True, max_delta: int = MAX_SEQ_LEN_DELTA) -> Iterator[tuple[int, int]]:
    """``(start, seq_len)`` windows covering rows ``0..n_tokens-2`` of a source once, without overlap.

    Fixed (``variable=False``, evaluation): ``seq_len = bptt``. Variable (AWD-LSTM training): base is
    ``bptt`` with probability 0.95, else ``bptt / 2``; ``seq_len = max(5, int(N(base, 5)))`` capped
    at ``bptt + max_delta``, drawn from ``generator``. The last window is clipped to what is left
    (``start + seq_len == n_tokens - 1``), so seq_len is the true window length.
    """
    _check_windows(n_tokens, bptt)
    check_int(max_delta, "max_delta", 0, "DARTS uses 20")
    last = n_tokens - 1  # targets need one row past the inputs
    start = 0
    if not variable:
        for start in range(0, last, bptt):
            yield start, min(bptt, last - start)
        return
    if generator is None:
        raise EGSError("variable BPTT windows need a torch.Generator; use epoch_windows(n, bptt, seed, epoch).")
    cap = bptt + max_delta
    while start < last:
        # blocks of _CHUNK draws: the same generator state gives the same lengths for any n_tokens
        base = torch.where(torch.rand(_CHUNK, generator=generator, dtype=torch.float64) < 0.95,
                           float(bptt), bptt / 2.0)
        noise = torch.randn(_CHUNK, generator=generator, dtype=torch.float64)
        lengths = torch.trunc(base + 5.0 * noise).clamp(min=5).clamp(max=cap).to(torch.int64).tolist()
        for length in lengths:
            if start >= last:
                return
            length = min(length, last - start)
            yield start, length
            start += length


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed mixed from ``(seed, epoch)`` (neighbouring pairs give unrelated streams)."""
    digest = hashlib.blake2b(f"egs-bptt:{int(seed)}:{int(epoch)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def epoch_windows(n_tokens: int, bptt: int, seed: int, epoch: int, variable: bool = True,
                  max_delta: int = MAX_SEQ_LEN_DELTA) -> list[tuple[int, int]]:
    """All ``(start, seq_len)`` windows of one epoch, a pure function of the arguments.

    A loop resumes exactly at window index ``s`` with ``epoch_windows(...)[s:]``. The loop rescales
    its learning rate per window by ``seq_len / bptt`` (AWD-LSTM).
    """
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch)) if variable else None
    return list(bptt_windows(n_tokens, bptt, gen, variable=variable, max_delta=max_delta))
