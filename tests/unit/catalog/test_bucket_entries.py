"""A Delta version's map bucket entries as SQLite packs them (catalog/publish/log_delta.py):
decoded to vmap's columns, refused when the index holds something of another form, and the
segment's records left out by id."""
from __future__ import annotations

import numpy as np
import pytest

from catalog.publish.log_delta import Entries, _unpacked


def test_packed_entries_decode_to_vmap_columns():
    ids, leaves = ["0a" * 16, "ff" * 16], ["11" * 32, "2e" * 32]
    e = _unpacked("".join(i + h for i, h in zip(ids, leaves)).encode(), b"7,1234567890123")
    assert [bytes(r).hex() for r in e.ids] == ids and [bytes(r).hex() for r in e.leaves] == leaves
    assert e.index.tolist() == [7, 1234567890123] and e.index.dtype == np.int64


@pytest.mark.parametrize("data, indexes", [
    (("0a" * 16 + "11" * 32).encode()[:-1], b"7"),       # an entry cut short
    (("0g" * 16 + "11" * 32).encode(), b"7"),            # not hex
    (("0a" * 16 + "11" * 32).encode(), b"7,8"),          # an index too many
    (("0a" * 16 + "11" * 32).encode(), b"-1"),           # an index below 0
])
def test_entries_of_another_form_are_refused(data, indexes):
    with pytest.raises(ValueError, match="wrong form"):
        _unpacked(data, indexes)


def test_without_leaves_out_the_ids_given():
    ids = np.frombuffer(bytes.fromhex("01" * 16 + "02" * 16 + "03" * 16), np.uint8).reshape(3, 16)
    e = Entries(ids, np.arange(3, dtype=np.int64), np.zeros((3, 32), np.uint8))
    kept = e.without(ids[[2, 0]])
    assert [bytes(r).hex() for r in kept.ids] == ["02" * 16] and kept.index.tolist() == [1]
    assert e.without(ids[:0]) is e
