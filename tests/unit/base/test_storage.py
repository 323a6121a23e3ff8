"""The store (base/storage.py) behaves the same on a local folder and on a real S3-compatible
server (moto's, on 127.0.0.1): keys, whole-or-nothing writes, random access, listing, deletes."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from base.errors import ConfigError
from base.storage import Store


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    if request.param == "file":
        return Store.local(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_bytes_round_trip_list_and_urls(store):
    assert not store.exists("a/b.txt") and store.list("a") == []
    assert store.write_text("a/b.txt", "你好 hello") == "a/b.txt"
    store.write_bytes("a/c/d.bin", bytes(range(256)) * 100)
    store.write_bytes("ab/e.bin", b"x")                   # a sibling prefix, not under a/
    assert store.exists("a/b.txt") and store.read_text("a/b.txt") == "你好 hello"
    assert store.list("a") == ["a/b.txt", "a/c/d.bin"] and store.size("a/c/d.bin") == 25_600
    assert store.url("a/b.txt") == f"{store.url()}/a/b.txt"
    assert store.key_of(store.url("a/c/d.bin")) == "a/c/d.bin" and store.key_of("s3://elsewhere/x") is None
    with store.open_input("a/c/d.bin") as f:            # random access: a range, not the object
        assert f.size() == 25_600 and f.read_at(4, 254) == bytes([254, 255, 0, 1])
    sub = store.sub("a/c")
    assert sub.read_bytes("d.bin")[:3] == b"\x00\x01\x02" and sub.url("d.bin") == store.url("a/c/d.bin")


def test_a_key_never_leads_out_of_the_store(store):
    for bad in ("../x", "a/../../x", ".."):
        with pytest.raises(ConfigError, match="bad store key"):
            store.write_text(bad, "no")
    with pytest.raises(ConfigError):
        store.delete_prefix("")


def test_open_output_writes_whole_or_not_at_all(store):
    with pytest.raises(RuntimeError):
        with store.open_output("v/records.bin") as out:
            out.write(b"half")
            raise RuntimeError("the task died")
    assert not store.exists("v/records.bin") and store.list("v") == []
    with store.open_output("v/records.bin") as out:
        out.write(b"whole")
    assert store.read_bytes("v/records.bin") == b"whole"


@pytest.mark.parametrize("fault", ["write", "rename"])
def test_a_local_write_that_fails_leaves_the_file_as_it_was(tmp_path, monkeypatch, fault):
    """A local store's write (open_output's, which write_bytes uses): a disk that fills half
    way through, or a rename that fails, leaves the old file and no hidden one beside it."""
    import base.storage as storage

    store = Store.local(tmp_path / "store")
    store.write_bytes("log/tile/0/000", b"old")
    assert oct((tmp_path / "store/log/tile/0/000").stat().st_mode & 0o777) == "0o600"
    if fault == "write":
        real_open = open

        class Full:
            def __init__(self, fd, *a, **k):
                self.f = real_open(fd, *a, **k)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(bytes(data[:3]))
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(storage, "open", Full, raising=False)
    else:
        def no_rename(src, dst):
            raise OSError("the rename failed")

        monkeypatch.setattr(storage.os, "replace", no_rename)
    with pytest.raises(OSError):
        store.write_bytes("log/tile/0/000", b"the whole new tile")
    with pytest.raises(OSError):
        store.write_bytes("log/tile/0/001", b"a new one")
    monkeypatch.undo()
    assert store.list() == ["log/tile/0/000"] and store.read_bytes("log/tile/0/000") == b"old"
    store.write_bytes("log/tile/1/x001/000", b"a folder made on the way")
    assert store.read_bytes("log/tile/1/x001/000") == b"a folder made on the way"


def test_files_in_and_out_move_copy_and_delete(store, tmp_path):
    local = tmp_path / "local.parquet"
    pq.write_table(pa.table({"n": list(range(10_000))}), local, row_group_size=1_000)
    store.put_file(local, "staging/s/r1/x.parquet")
    assert local.exists()                                  # put without move: a copy
    pf = pq.ParquetFile(store.open_input("staging/s/r1/x.parquet"))
    assert pf.read_row_group(7).column("n")[0].as_py() == 7_000
    back = store.get_file("staging/s/r1/x.parquet", tmp_path / "back" / "x.parquet")
    assert back.read_bytes() == local.read_bytes()
    store.put_file(local, "staging/s/r1/y.parquet", move=True)
    assert not local.exists() and store.exists("staging/s/r1/y.parquet")
    store.copy("staging/s/r1/y.parquet", "mirror/s.parquet")
    store.move("staging/s/r1/x.parquet", "mirror/t.parquet")
    assert not store.exists("staging/s/r1/x.parquet") and store.read_bytes("mirror/t.parquet") == back.read_bytes()
    store.delete("staging/s/r1/missing")                   # nothing to delete: not an error
    store.delete_prefix("staging/s")
    assert store.list("staging") == [] and store.list("mirror") == ["mirror/s.parquet", "mirror/t.parquet"]


def test_put_dir_keeps_relative_names(store, tmp_path):
    docs = tmp_path / "docs"
    (docs / "validations" / "x").mkdir(parents=True)
    (docs / "index.html").write_text("<html>")
    (docs / "validations" / "x" / "a.html").write_text("<a>")
    assert store.put_dir(docs, "staging/s/r1/data_docs") == [
        "staging/s/r1/data_docs/index.html", "staging/s/r1/data_docs/validations/x/a.html"]
    assert store.read_text("staging/s/r1/data_docs/validations/x/a.html") == "<a>"


def test_store_urls_from_the_settings(tmp_path, monkeypatch):
    from base.settings import get_settings, reset_settings

    monkeypatch.setenv("EXCHANGE_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("EXCHANGE_STORE_URL", raising=False)
    reset_settings()
    try:
        s = get_settings()
        assert s.store_url == (tmp_path / "h").resolve().as_uri() and s.store.local_path() == (tmp_path / "h").resolve()
        monkeypatch.setenv("EXCHANGE_STORE_URL", str(tmp_path / "shared"))          # a bare path: file://
        reset_settings()
        assert get_settings().store.local_path() == (tmp_path / "shared").resolve()
        monkeypatch.setenv("EXCHANGE_STORE_URL", "ftp://host/x")
        reset_settings()
        with pytest.raises(ConfigError, match="EXCHANGE_STORE_URL"):
            get_settings()
    finally:
        reset_settings()
