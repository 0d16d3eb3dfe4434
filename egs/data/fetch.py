"""Datasets: where they live, how to get them, how to load them.

Datasets are read from ``$EGS_DATA_DIR`` or, by default, the ``data/`` folder of the checkout, in
their standard layouts: CIFAR-10 as torchvision's ``cifar10/cifar-10-batches-py``, PTB and
WikiText-2 as ``{ptb,wikitext-2}/{train,valid,test}.txt``. :func:`fetch` either downloads the
canonical archive and verifies its checksum, or links/copies from a local mirror with the same
layout (``--mirror DIR`` or ``$EGS_DATA_MIRROR``). A mirror's own checksum list (a ``SHA256SUMS``
file, or ``<sha256>  <path>`` lines in its ``README.md``) is what gets verified for a mirror, since
a mirror may hold reconstructions that differ from the official bytes; files that a mirror does not
list are checked against the canonical checksums.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from egs.core.errors import EGSError, WriteError
from egs.core.files import write_json
from egs.core.locks import exclusive

MANIFEST = ".egs-fetch.json"


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's standard layout, canonical source and checksums."""

    name: str  # name on the command line
    dirname: str  # folder under the data dir (and in a mirror)
    url: str  # canonical archive
    archive_md5: str | None
    members: dict[str, str]  # archive member path suffix -> path in the dataset folder
    checksums: dict[str, tuple[str, str]]  # path in the dataset folder -> (algorithm, hex digest)
    file_urls: dict[str, str] = field(default_factory=dict)  # plain files, no archive: path -> its own URL

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(self.checksums)


_CIFAR = "cifar-10-batches-py/"
_NB201_VALID, _NB201_TEST = "cifar10-valid_200epochs_mean3seeds.csv", "nats-tss_200epochs_test.csv"
# Checksums of the official files (the md5 values torchvision verifies; the text-file digests are
# those of Mikolov's simple-examples and the WikiText-2 v1 tokens release).
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec(
        name="cifar10", dirname="cifar10",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
        members={_CIFAR + f: _CIFAR + f for f in
                 ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
                  "test_batch", "batches.meta")},
        checksums={
            _CIFAR + "data_batch_1": ("md5", "c99cafc152244af753f735de768cd75f"),
            _CIFAR + "data_batch_2": ("md5", "d4bba439e000b95fd0a9bffe97cbabec"),
            _CIFAR + "data_batch_3": ("md5", "54ebc095f3ab1f0389bbae665268c751"),
            _CIFAR + "data_batch_4": ("md5", "634d18415352ddfa80567beed471001a"),
            _CIFAR + "data_batch_5": ("md5", "482c414d41f54cd18b22e5b47cb7c3cb"),
            _CIFAR + "test_batch": ("md5", "40351d587109b95175f43aff81a1287e"),
            _CIFAR + "batches.meta": ("md5", "5ff9c542aee3614f3951f8cda6e48888"),
        }),
    "ptb": DatasetSpec(
        name="ptb", dirname="ptb",
        url="http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz",
        archive_md5=None,
        members={"data/ptb.train.txt": "train.txt", "data/ptb.valid.txt": "valid.txt",
                 "data/ptb.test.txt": "test.txt"},
        checksums={"train.txt": ("md5", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
                   "valid.txt": ("md5", "aa0affc06ff7c36e977d7cd49e3839bf"),
                   "test.txt": ("md5", "8b80168b89c18661a38ef683c0dc3721")}),
    "wikitext2": DatasetSpec(
        name="wikitext2", dirname="wikitext-2",
        url="https://wikitext.smerity.com/wikitext-2-v1.zip",
        archive_md5=None,
        members={"wikitext-2/wiki.train.tokens": "train.txt", "wikitext-2/wiki.valid.tokens": "valid.txt",
                 "wikitext-2/wiki.test.tokens": "test.txt"},
        checksums={
            "train.txt": ("sha256", "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f"),
            "valid.txt": ("sha256", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            "test.txt": ("sha256", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0")}),
    # NAS-Bench-201's ground truth (Dong & Yang, ICLR 2020): two public CSV exports of its tables, at pinned commits
    # (../shared/data/nas-bench-201/README.md: what each column is)
    "nas-bench-201": DatasetSpec(
        name="nas-bench-201", dirname="nas-bench-201",
        url="https://github.com/gabro8a/NAS-Landscapes and https://github.com/v-tao/nats-bench-landscape",
        archive_md5=None, members={},
        checksums={
            _NB201_VALID: ("sha256", "1fc89edb42c804223ea2f520a3a65b5e10d8c34bc2d1bbca6bc4b4b38a193827"),
            _NB201_TEST: ("sha256", "cb5d777ec3368be83c8f9b3aa4d520696051cb0eb8d94b8f85b519f9ea4afa3e")},
        file_urls={
            _NB201_VALID: "https://raw.githubusercontent.com/gabro8a/NAS-Landscapes/"
                          "abd5221948d901f765e3bc61d0175a3c1c52b802/data/accuracy/cifar10_avg.csv",
            _NB201_TEST: "https://raw.githubusercontent.com/v-tao/nats-bench-landscape/"
                         "b307ae5fe6e8d7043cd4fe7d1c3532288271adb7/nats_bench.csv"}),
}


def spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise EGSError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data folder: ``path`` if given, else ``$EGS_DATA_DIR``, else ``data/`` of the checkout."""
    if path is not None:
        return Path(path).expanduser().resolve()
    if os.environ.get("EGS_DATA_DIR"):
        return Path(os.environ["EGS_DATA_DIR"]).expanduser().resolve()
    from egs.core.paths import repo_root
    return repo_root() / "data"


def _how_to_get(s: DatasetSpec) -> str:
    return (f"Get it with `python -m egs data fetch {s.name}` (downloads {s.url} and verifies its "
            f"checksum), or from a local mirror with `python -m egs data fetch {s.name} --mirror DIR` "
            "(or EGS_DATA_MIRROR=DIR), or point EGS_DATA_DIR at a folder that already holds it.")


def locate(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name``; one clear :class:`EGSError` if any of its files is missing."""
    s = spec(name)
    folder = data_dir(root) / s.dirname
    missing = [f for f in s.files if not (folder / f).is_file()]
    if missing:
        raise EGSError(f"dataset {name!r} not found: {folder / missing[0]} is missing. {_how_to_get(s)}")
    return folder


# ----------------------------------------------------------------------------- verification

def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_SUM_LINE = re.compile(r"^\s*([0-9a-f]{64})\s+\*?(\S+)\s*$")


def mirror_checksums(mirror: Path) -> dict[str, str]:
    """The mirror's own sha256 list, ``{path relative to the mirror: digest}`` (may be empty)."""
    sums: dict[str, str] = {}
    for listing in (mirror / "SHA256SUMS", mirror / "README.md"):
        if listing.is_file():
            for line in listing.read_text(errors="replace").splitlines():
                m = _SUM_LINE.match(line)
                if m:
                    sums.setdefault(m.group(2).removeprefix("./"), m.group(1))
    return sums


def _verify(path: Path, expected: tuple[str, str], origin: str) -> None:
    algorithm, digest = expected
    actual = file_digest(path, algorithm)
    if actual != digest:
        raise EGSError(f"checksum mismatch for {path} (from {origin}): {algorithm} is {actual}, expected "
                       f"{digest}. The file is corrupt or not the expected release; fetch it again, "
                       "or pass --no-verify if you trust this source.")


# ----------------------------------------------------------------------------- fetching

def fetch(name: str, root: str | os.PathLike | None = None, mirror: str | os.PathLike | None = None,
          copy: bool = False, force: bool = False, verify: bool = True, progress: bool = True) -> Path:
    """Make dataset ``name`` available under the data dir and return its folder.

    With ``mirror`` (or ``$EGS_DATA_MIRROR``) the files are symlinked (``copy=False``) or copied from
    the mirror's ``<dirname>/`` folder; otherwise the canonical archive is downloaded. Already
    fetched datasets are left alone unless ``force``.
    """
    s = spec(name)
    folder = data_dir(root) / s.dirname
    if not force and _fetched(s, folder):
        return folder
    mirror = mirror if mirror is not None else os.environ.get("EGS_DATA_MIRROR") or None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(folder, err) from None
    with exclusive(folder / ".fetch.lock"):  # one fetch into a folder at a time; a second waits, then finds it done
        if not force and _fetched(s, folder):
            return folder
        if mirror is not None:
            source = _from_mirror(s, Path(mirror).expanduser().resolve(), folder, copy, verify)
        else:
            source = _download(s, folder, verify, progress)
        write_json(folder / MANIFEST, {"dataset": s.name, "source": source, "verified": verify,
                                       "files": sorted(s.files)})
    return folder


def _fetched(s: DatasetSpec, folder: Path) -> bool:
    return (folder / MANIFEST).is_file() and all((folder / f).is_file() for f in s.files)


def _from_mirror(s: DatasetSpec, mirror: Path, folder: Path, copy: bool, verify: bool) -> str:
    if not mirror.is_dir():
        raise EGSError(f"mirror {mirror} is not a folder; pass --mirror DIR (or EGS_DATA_MIRROR) with a "
                       f"folder that holds {s.dirname}/ in the standard layout.")
    sums = mirror_checksums(mirror)
    for rel in s.files:
        src = mirror / s.dirname / rel
        if not src.is_file():
            raise EGSError(f"mirror {mirror} lacks {s.dirname}/{rel}; a mirror must hold the standard "
                           f"layout ({', '.join(s.files)} under {s.dirname}/). {_how_to_get(s)}")
        if verify:
            listed = sums.get(f"{s.dirname}/{rel}")
            _verify(src, ("sha256", listed) if listed else s.checksums[rel],
                    "the mirror's own checksum list" if listed else "canonical checksum")
        dst = folder / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.unlink(missing_ok=True)
        if copy:
            shutil.copyfile(src, tmp)
        else:
            tmp.symlink_to(src)
        os.replace(tmp, dst)
    return f"mirror:{mirror}"


def _download(s: DatasetSpec, folder: Path, verify: bool, progress: bool) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    if s.file_urls:
        return _download_files(s, folder, verify, progress)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmpdir:
        archive = Path(tmpdir) / Path(s.url).name
        try:
            _urlretrieve(s.url, archive, progress)
        except OSError as err:
            raise EGSError(f"could not download {s.url} ({err}). Check your connection, or use a local "
                           f"mirror: `python -m egs data fetch {s.name} --mirror DIR`.") from err
        if verify and s.archive_md5:
            _verify(archive, ("md5", s.archive_md5), s.url)
        extracted = _extract(archive, s, Path(tmpdir) / "out")
        for rel in s.files:
            if verify:
                _verify(extracted[rel], s.checksums[rel], s.url)
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(extracted[rel], dst)
    return s.url


def _download_files(s: DatasetSpec, folder: Path, verify: bool, progress: bool) -> str:
    """A dataset of plain files (no archive): each downloaded from its own URL, verified, then moved in place."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmpdir:
        for rel, url in s.file_urls.items():
            got = Path(tmpdir) / Path(rel).name
            try:
                _urlretrieve(url, got, progress)
            except OSError as err:
                raise EGSError(f"could not download {url} ({err}). Check your connection, or use a local "
                               f"mirror: `python -m egs data fetch {s.name} --mirror DIR`.") from err
            if verify:
                _verify(got, s.checksums[rel], url)
            os.replace(got, folder / rel)
    return ", ".join(s.file_urls.values())


def _urlretrieve(url: str, dest: Path, progress: bool) -> None:
    from tqdm.auto import tqdm
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                bar.update(len(block))


def _extract(archive: Path, s: DatasetSpec, out: Path) -> dict[str, Path]:
    """Extract the members the dataset needs (matched by path suffix) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}

    def target(member: str) -> str | None:
        for suffix, rel in s.members.items():
            if member.replace("\\", "/").endswith(suffix):
                return rel
        return None

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                rel = target(info.filename)
                if rel and not info.is_dir():
                    found[rel] = out / rel
                    found[rel].parent.mkdir(parents=True, exist_ok=True)
                    found[rel].write_bytes(z.read(info))
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                rel = target(member.name)
                if rel and member.isfile():
                    found[rel] = out / rel
                    found[rel].parent.mkdir(parents=True, exist_ok=True)
                    found[rel].write_bytes(t.extractfile(member).read())
    missing = sorted(set(s.files) - set(found))
    if missing:
        raise EGSError(f"archive {archive.name} from {s.url} lacks {', '.join(missing)}; the download is "
                       "not the expected release. Try again or use --mirror DIR.")
    return found


def status(root: str | os.PathLike | None = None) -> dict[str, str]:
    """``{dataset: 'ready (<source>)' | 'missing'}`` for every known dataset."""
    import json
    out = {}
    for name, s in DATASETS.items():
        folder = data_dir(root) / s.dirname
        if all((folder / f).is_file() for f in s.files):
            manifest = folder / MANIFEST
            source = json.loads(manifest.read_text()).get("source", "?") if manifest.is_file() else "unmanaged"
            out[name] = f"ready ({source})"
        else:
            out[name] = "missing"
    return out


# ----------------------------------------------------------------------------- loading

def cifar10(train: bool = True, transform=None, root: str | os.PathLike | None = None):
    """CIFAR-10 through torchvision, from the data dir (see :func:`fetch`).

    torchvision's own md5 check is bypassed: :func:`fetch` has already verified the files, against
    the canonical checksums or a mirror's own list (a mirror may hold reconstructed batch files).
    """
    import torchvision

    class _VerifiedCIFAR10(torchvision.datasets.CIFAR10):
        def _check_integrity(self) -> bool:
            return True

    folder = locate("cifar10", root)
    return _VerifiedCIFAR10(root=str(folder), train=train, transform=transform, download=False)


def corpus_files(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{'train'|'valid'|'test': path}`` of a word-level corpus (``ptb`` or ``wikitext2``)."""
    if name == "cifar10":
        raise EGSError("cifar10 is an image dataset; corpus_files takes 'ptb' or 'wikitext2'.")
    folder = locate(name, root)
    return {split: folder / f"{split}.txt" for split in ("train", "valid", "test")}
