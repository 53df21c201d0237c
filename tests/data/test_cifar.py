"""The official CIFAR archives: binary records, the python pickles behind a checksum and a
restricted unpickler, and where each is looked for."""

import dataclasses
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from cnnlab.data import cifar, sources
from cnnlab.errors import CnnlabError

RNG = np.random.default_rng(0)


def _tar(path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _binary_members(spec: cifar.CifarArchive, per_batch: int, classes: int):
    members, expected = {}, {"train": [], "test": []}
    for name in (*spec.train, spec.test):
        labels = RNG.integers(0, classes, (per_batch, spec.label_bytes), dtype=np.uint8)
        pixels = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        members[name] = np.concatenate([labels, pixels], axis=1).tobytes()
        expected["test" if name == spec.test else "train"].append((labels[:, -1], pixels))
    members[spec.meta] = "\n".join(f"class{i}" for i in range(classes)).encode() + b"\n\n"
    return members, expected


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr("cnnlab.data.files.CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/")


@pytest.mark.parametrize("name, classes", [("cifar10", 10), ("cifar100", 100)])
def test_binary_archive_records(tmp_path, monkeypatch, no_network, name: str, classes: int) -> None:
    spec = cifar.ARCHIVES[name]["binary"]
    members, expected = _binary_members(spec, 4, classes)
    md5 = _tar(tmp_path / spec.name, members)
    with pytest.raises(CnnlabError, match="not the published"):  # a home-made archive is not official
        sources.load(name, tmp_path)
    monkeypatch.setitem(cifar.ARCHIVES[name], "binary", dataclasses.replace(spec, md5=md5))
    data = sources.load(name, tmp_path)
    assert data.train.images.shape == (4 * len(spec.train), 3, 32, 32) and len(data.test) == 4
    assert data.train.classes == tuple(f"class{i}" for i in range(classes))
    labels, pixels = expected["test"][0]
    assert data.test.labels.tolist() == labels.tolist()  # CIFAR-100: the fine label, the second byte
    # Record layout: 1,024 red values, then green, then blue, each row-major.
    assert torch.equal(data.test.images[2, 1, 0], torch.from_numpy(pixels[2, 1024:1056]))


def _python_members(spec: cifar.CifarArchive, payload_for_test: bytes | None = None):
    def batch(n: int) -> bytes:
        data = {b"batch_label": b"x", b"labels": RNG.integers(0, 10, n).tolist(),
                b"data": RNG.integers(0, 256, (n, 3072)).astype(np.uint8), b"filenames": [b"a.png"] * n}
        return pickle.dumps(data, protocol=2)

    members = {name: batch(3) for name in spec.train}
    members[spec.test] = payload_for_test or batch(2)
    members[spec.meta] = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 3}, protocol=2)
    return members


class _Exploit:
    """A pickle that calls a function on load: what a hostile 'CIFAR batch' could do."""

    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_python_archive_is_read_through_the_restricted_unpickler(tmp_path, monkeypatch, no_network) -> None:
    spec = cifar.ARCHIVES["cifar10"]["python"]
    md5 = _tar(tmp_path / spec.name, _python_members(spec))
    monkeypatch.setitem(cifar.ARCHIVES["cifar10"], "python", dataclasses.replace(spec, md5=md5))
    data = sources.load("cifar10", tmp_path)
    assert data.train.images.shape == (15, 3, 32, 32) and len(data.test) == 2
    assert data.train.classes[3] == "c3"


def test_hostile_pickle_never_runs(tmp_path, monkeypatch, no_network) -> None:
    monkeypatch.chdir(tmp_path)
    spec = cifar.ARCHIVES["cifar10"]["python"]
    hostile = pickle.dumps(_Exploit(), protocol=2)
    md5 = _tar(tmp_path / spec.name, _python_members(spec, hostile))
    # With the wrong checksum the archive is refused before anything is unpickled ...
    with pytest.raises(CnnlabError, match="not the published"):
        sources.load("cifar10", tmp_path)
    # ... and even with a matching one, the unpickler refuses every global but numpy's arrays.
    monkeypatch.setitem(cifar.ARCHIVES["cifar10"], "python", dataclasses.replace(spec, md5=md5))
    with pytest.raises(CnnlabError, match=r"refusing to unpickle (__builtin__|builtins)\.exec"):
        sources.load("cifar10", tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_cifar_says_where_it_looked(tmp_path, no_network) -> None:
    with pytest.raises(CnnlabError) as error:
        sources.load("cifar100", tmp_path / "empty")
    message = str(error.value)
    assert "cifar100 not found in" in message and "cifar-100-binary.tar.gz" in message
    assert str(tmp_path / "empty") in message and "\n" not in message


def test_class_folder_tree_comes_first(tmp_path, no_network) -> None:
    from PIL import Image

    for part in ("train", "test"):
        folder = tmp_path / "cifar100" / part / "apple"
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32), (200, 0, 0)).save(folder / "0.png")
    data = sources.load("cifar100", tmp_path)
    assert data.train.classes == ("apple",) and data.test.images.shape == (1, 3, 32, 32)


def test_restricted_unpickler_builds_plain_arrays_only() -> None:
    plain = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"ints": np.arange(3, dtype=">i8"),
             b"fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)), b"names": [b"a"]}
    payload = pickle.dumps(plain, protocol=2)
    back = cifar.restricted_unpickle(payload)
    for key in (b"data", b"ints", b"fortran"):
        assert np.array_equal(back[key], plain[key]) and back[key].dtype == plain[key].dtype
    # Pickles written by numpy 1 (CIFAR's own) name numpy.core; numpy 2 writes numpy._core.
    old = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert np.array_equal(cifar.restricted_unpickle(old)[b"data"], plain[b"data"])


@pytest.mark.parametrize("hostile", [
    np.zeros(2, dtype=[("a", "O")]),  # fields holding Python objects
    np.zeros(2, dtype=[("a", "u1"), ("b", "f4")]),  # any structured dtype
    np.array([object(), 1], dtype=object),  # object arrays
    np.zeros(2, dtype="M8[s]"),  # not a plain number
])
def test_restricted_unpickler_refuses_other_arrays(hostile) -> None:
    try:
        payload = pickle.dumps({b"data": hostile}, protocol=2)
    except (pickle.PicklingError, TypeError, AttributeError):
        pytest.skip("numpy cannot pickle this here")
    with pytest.raises(CnnlabError, match="refusing|unreadable"):
        cifar.restricted_unpickle(payload)


def test_restricted_unpickler_checks_the_byte_count() -> None:
    short = pickle.dumps({b"data": np.zeros(8, dtype=np.uint8)}, protocol=2).replace(b"K\x08\x85", b"K\t\x85", 1)
    with pytest.raises(CnnlabError):
        cifar.restricted_unpickle(short)  # the shape promises 9 bytes, the buffer holds 8


def test_python2_byte_order_is_kept() -> None:
    array = np.array([1, 2, 3], dtype=">i2")
    payload = pickle.dumps({b"data": array}, protocol=2)
    # Python 2 wrote the dtype's byte order as a byte string, which encoding="bytes" keeps as bytes.
    python2 = payload.replace(b"X\x01\x00\x00\x00>", b"U\x01>", 1)
    assert python2 != payload
    assert cifar.restricted_unpickle(python2)[b"data"].tolist() == [1, 2, 3]
