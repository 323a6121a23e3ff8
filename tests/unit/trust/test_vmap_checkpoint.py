"""The verifiable map (exchange-map/1: catalog/signing/vmap.py builds, trust/vmap.py verifies),
C2SP checkpoints and signed notes (trust/checkpoint.py, KeyStore.sign_note), each checked
against the independent implementation in tests/independent/tlog.py."""
from __future__ import annotations

import ast
import base64
import copy
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from base.storage import Store
from catalog.signing import vmap
from catalog.signing.keys import KeyStore
from catalog.signing.merkle import MerkleTree
from tests.independent import tlog
from trust import checkpoint
from trust.vmap import bucket_hash, bucket_of, entry_bytes, verify_map_proof

PASS = b"correct horse battery staple"
NAME = "exchange.example/business_licence.smr"


def make_records(n: int, seed: int) -> dict[str, tuple[int, bytes]]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    index = rng.permutation(10 * n)[:n]
    leaves = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    return {ids[i].tobytes().hex(): (int(index[i]), leaves[i].tobytes()) for i in range(n)}


def columns(records: dict[str, tuple[int, bytes]], seed: int = 0):
    """The records as bucket_hashes' columns, in a shuffled order."""
    rids = list(records)
    np.random.default_rng(seed).shuffle(rids)
    ids = np.array([np.frombuffer(bytes.fromhex(r), np.uint8) for r in rids]).reshape(-1, 16)
    index = np.array([records[r][0] for r in rids], np.int64)
    leaves = np.array([np.frombuffer(records[r][1], np.uint8) for r in rids]).reshape(-1, 32)
    return ids, index, leaves


def build(records, bits):
    return vmap.MapLevel(vmap.bucket_hashes(*columns(records), bits))


def map_proof(records, level, record_id):
    """A proof as a server makes one: the bucket's records picked by bucket_range."""
    bucket = bucket_of(record_id, level.bits)
    lo, hi = vmap.bucket_range(bucket, level.bits)
    entries = [(r, i, h) for r, (i, h) in records.items() if lo <= r and (hi is None or r < hi)]
    return vmap.proof(level.bits, bucket, entries, level.path(bucket))


def both_verify(proof, root, record_id):
    """trust.vmap's answer, asserted equal to the independent code's (through JSON)."""
    ours = verify_map_proof(json.loads(json.dumps(proof)), root, record_id)
    theirs = tlog.map_lookup(json.dumps(proof), root, record_id)
    assert theirs == (("absent",) if ours is None else ("found", *ours))
    return ours


def both_refuse(proof, root, record_id):
    with pytest.raises(ValueError):
        verify_map_proof(proof, root, record_id)
    assert tlog.map_lookup(proof, root, record_id)[0] == "invalid"


# -- the map ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [0, 1, 5, 12])
def test_map_proofs_verify_for_present_and_absent_records(bits):
    records = make_records(300, seed=bits)
    level = build(records, bits)
    root = level.root()
    assert root == tlog.map_root_of(records, bits)
    present = list(records)[:40]
    absent = list(make_records(40, seed=100 + bits))
    for rid in present:
        assert both_verify(map_proof(records, level, rid), root, rid) == records[rid]
    for rid in absent:
        assert both_verify(map_proof(records, level, rid), root, rid) is None
    if bits == 12:   # most of 4096 buckets hold nothing: absence shown by an empty bucket
        empty = [r for r in absent if not map_proof(records, level, r)["entries"]]
        assert empty and all(both_verify(map_proof(records, level, r), root, r) is None for r in empty)


def test_an_empty_map_and_an_empty_bucket():
    level = vmap.MapLevel(vmap.bucket_hashes(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64),
                                             np.zeros((0, 32), np.uint8), 3))
    empty = hashlib.sha256(b"\x00").digest()
    assert bucket_hash([]) == empty and (level.hashes == np.frombuffer(empty, np.uint8)).all()
    assert level.root() == tlog.map_root_of({}, 3)
    rid = "ab" * 16
    assert both_verify(vmap.proof(3, bucket_of(rid, 3), [], level.path(bucket_of(rid, 3))), level.root(), rid) is None


def test_tampered_proofs_fail():
    records = make_records(200, seed=7)
    level = build(records, 1)
    root = level.root()
    rid = next(r for r in records if bucket_of(r, 1) == 0)
    good = map_proof(records, level, rid)
    assert len(good["entries"]) > 2 and both_verify(good, root, rid) == records[rid]
    at = [e[0] for e in good["entries"]].index(rid)

    def changed(edit):
        p = copy.deepcopy(good)
        edit(p)
        return p

    def flip_hash(p):
        h = p["entries"][at][2]
        p["entries"][at][2] = ("0" if h[0] != "0" else "1") + h[1:]

    def other_index(p):
        p["entries"][at][1] += 1

    def swap(p):
        p["entries"][0], p["entries"][1] = p["entries"][1], p["entries"][0]

    def hide(p):
        del p["entries"][at]

    def other_bucket(p):
        p["bucket"] = 1

    other = next(r for r in records if bucket_of(r, 1) == 1)

    def other_path(p):
        p["path"] = [h.hex() for h in level.path(1)]

    for edit in (flip_hash, other_index, swap, hide, other_bucket, other_path):
        both_refuse(changed(edit), root, rid)
    both_refuse(map_proof(records, level, other), root, rid)           # a proof of another bucket
    both_refuse(changed(lambda p: p["entries"].append(p["entries"][-1])), root, rid)   # one id twice
    both_refuse(changed(lambda p: p.update(bits=2)), root, rid)
    both_refuse(good, bytes(32), rid)
    both_refuse(changed(lambda p: p["entries"][at].__setitem__(0, rid.upper())), root, rid)
    both_refuse(changed(lambda p: p.update(extra=1)), root, rid)
    both_refuse(changed(lambda p: p["entries"][at].__setitem__(1, True)), root, rid)


def test_other_buckets_and_paths_fail_at_higher_bits():
    records = make_records(300, seed=11)
    level = build(records, 5)
    root = level.root()
    rid = list(records)[0]
    good = map_proof(records, level, rid)
    for wrong in (good["bucket"] ^ 1, good["bucket"] ^ 16):
        both_refuse({**good, "path": [h.hex() for h in level.path(wrong)]}, root, rid)
        both_refuse({**good, "bucket": wrong}, root, rid)
    entries = [(r, i, h) for r, (i, h) in records.items()]
    with pytest.raises(ValueError):   # the builder refuses entries of another bucket
        vmap.proof(5, good["bucket"], entries, level.path(good["bucket"]))


def test_bits_for_and_bucket_range():
    assert [vmap.bits_for(n) for n in (0, 1, 64, 65, 128, 129, 64 << 10, (64 << 10) + 1)] == [0, 0, 0, 1, 1, 2, 10, 11]
    assert vmap.bits_for(10**12) == 24
    assert vmap.bucket_range(0, 0) == ("0" * 32, None)
    assert vmap.bucket_range(0, 1) == ("0" * 32, "8" + "0" * 31)
    assert vmap.bucket_range(1, 1) == ("8" + "0" * 31, None)
    for bits in (1, 5, 12, 24):
        for bucket in (0, 1, (1 << bits) - 1, (1 << bits) // 3):
            lo, hi = vmap.bucket_range(bucket, bits)
            assert bucket_of(lo, bits) == bucket
            if hi is not None:
                assert bucket_of(hi, bits) == bucket + 1
                assert bucket_of(f"{int(hi, 16) - 1:032x}", bits) == bucket
    with pytest.raises(ValueError):
        vmap.bucket_range(2, 1)


def test_bucket_hashes_are_the_spec_and_refuse_duplicates():
    records = make_records(50, seed=3)
    hashes = vmap.bucket_hashes(*columns(records, seed=1), 2)
    assert (hashes == vmap.bucket_hashes(*columns(records, seed=2), 2)).all()   # any input order
    for bucket in range(4):
        mine = sorted(r for r in records if bucket_of(r, 2) == bucket)
        assert hashes[bucket].tobytes() == bucket_hash(entry_bytes(r, *records[r]) for r in mine)
    twins = {"ab" * 8 + f"{i:016x}": (i, bytes([i % 251]) * 32) for i in (9, 0, 5, 2**62, 7)}  # one high half
    for bits in (0, 3):
        assert vmap.MapLevel(vmap.bucket_hashes(*columns(twins, seed=4), bits)).root() == tlog.map_root_of(twins, bits)
    ids, index, leaves = columns(records)
    with pytest.raises(ValueError, match="twice"):
        vmap.bucket_hashes(np.concatenate([ids, ids[:1]]), np.concatenate([index, index[:1]]),
                           np.concatenate([leaves, leaves[:1]]), 2)


def test_bucket_hashes_a_range_of_buckets_at_a_time_are_those_at_once():
    """Batches of whole buckets (batch boundaries inside buckets, a bucket larger than a batch,
    empty buckets, ids sharing their high half) hash to the same bytes as one batch of all."""
    records = make_records(700, seed=11)
    twins = {"ab" * 8 + f"{i:016x}": (i + 1000, bytes([i % 251]) * 32) for i in (9, 0, 5, 2**62, 7)}
    records.update(twins)
    for bits in (0, 1, 3, 6, 12):
        whole = vmap.bucket_hashes(*columns(records, seed=bits), bits, batch=10**9)
        assert vmap.MapLevel(whole).root() == tlog.map_root_of(records, bits)
        for batch in (1, 2, 3, 7, 50, 64, 65, 699):
            assert (vmap.bucket_hashes(*columns(records, seed=batch), bits, batch=batch) == whole).all(), (bits, batch)
    empty = vmap.bucket_hashes(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64), np.zeros((0, 32), np.uint8), 3,
                               batch=1)
    assert (empty == vmap.bucket_hashes(np.zeros((0, 16), np.uint8), np.zeros(0, np.int64),
                                        np.zeros((0, 32), np.uint8), 3)).all() and len(empty) == 8
    ids, index, leaves = columns(records)
    with pytest.raises(ValueError, match="twice"):       # refused whatever the batch
        vmap.bucket_hashes(np.concatenate([ids, ids[:1]]), np.concatenate([index, index[:1]]),
                           np.concatenate([leaves, leaves[:1]]), 2, batch=3)


def test_some_bucket_hashes_are_those_buckets_of_the_whole_map():
    """A Delta version hashes only its touched buckets, from their entries alone, at once."""
    records = make_records(3000, seed=6)
    whole = vmap.bucket_hashes(*columns(records), 6)
    touched = np.array([0, 5, 6, 40, 63])
    mine = {r: v for r, v in records.items() if bucket_of(r, 6) in set(touched.tolist())}
    assert (vmap.some_bucket_hashes(*columns(mine, seed=7), 6, touched) == whole[touched]).all()
    with_empty = np.array([0, 1, 5, 6, 40, 63])              # bucket 1: none of mine, its hash the empty one's
    for batch in (1, 2, 30, 47, 48, 100, 10**9):             # a range of whole buckets at a time
        got = vmap.some_bucket_hashes(*columns(mine, seed=batch), 6, with_empty, batch=batch)
        assert (got[[0, 2, 3, 4, 5]] == whole[touched]).all() and got[1].tobytes() == bucket_hash([]), batch
    with pytest.raises(ValueError, match="outside"):        # an entry of a bucket not listed
        vmap.some_bucket_hashes(*columns(mine), 6, touched[1:])
    with pytest.raises(ValueError, match="ascending"):
        vmap.some_bucket_hashes(*columns(mine), 6, touched[::-1])


def test_replaced_matches_a_rebuild_and_save_load(tmp_path):
    records = make_records(2000, seed=5)
    level = build(records, 10)
    rng = np.random.default_rng(9)
    updates = {int(b): rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for b in rng.choice(1024, 17)}
    new = level.replaced(updates)
    fresh = level.hashes.copy()
    for b, h in updates.items():
        fresh[b] = np.frombuffer(h, np.uint8)
    assert new.root() == vmap.MapLevel(fresh).root() == tlog.mth([bytes(h) for h in fresh])
    assert new.root() != level.root() and level.root() == tlog.mth([bytes(h) for h in level.hashes])
    for b in list(updates)[:5] + [0, 1023]:
        assert tlog.verify_inclusion(b, 1024, fresh[b].tobytes(), new.path(b), new.root())
    rows = level.replaced_rows(np.array(list(updates)), np.array([list(h) for h in updates.values()], np.uint8))
    assert rows.root() == new.root() and [x.tobytes() for x in rows.levels[1]] == [x.tobytes() for x in new.levels[1]]
    assert level.replaced_rows(np.zeros(0, np.int64), np.zeros((0, 32), np.uint8)) is level
    with pytest.raises(ValueError, match="outside"):
        level.replaced_rows(np.array([1024]), np.zeros((1, 32), np.uint8))
    with pytest.raises(ValueError, match="32 bytes"):
        level.replaced_rows(np.array([3]), np.zeros((1, 31), np.uint8))
    store = Store.local(tmp_path)
    new.save(store, "v1/map.bin")
    again = vmap.MapLevel.load(store, "v1/map.bin")
    assert again.bits == 10 and again.root() == new.root() and again.path(5) == new.path(5)
    store.write_bytes("bad.bin", store.read_bytes("v1/map.bin")[:-1])
    with pytest.raises(ValueError):
        vmap.MapLevel.load(store, "bad.bin")


# -- the independent code -------------------------------------------------------------------------
def leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(b"\x00" + i.to_bytes(4, "big")).digest() for i in range(n)]


def test_independent_tree_agrees_with_merkle_tree():
    for n in range(0, 41):
        d = leaves(n)
        tree = MerkleTree.build(np.frombuffer(b"".join(d), np.uint8).reshape(n, 32))
        assert tree.root == tlog.mth(d)
        for i in range(n):
            assert tree.inclusion_proof(i) == tlog.audit_path(i, d)
            assert tlog.verify_inclusion(i, n, d[i], tree.inclusion_proof(i), tree.root)
            if i ^ 1 < n:   # the same path at the neighbour's index
                assert not tlog.verify_inclusion(i ^ 1, n, d[i], tree.inclusion_proof(i), tree.root)
            assert not tlog.verify_inclusion(i, n, d[i], tree.inclusion_proof(i), tlog.mth(d[:-1]))


def test_independent_consistency_proofs():
    d = leaves(40)
    roots = [tlog.mth(d[:n]) for n in range(41)]
    for n in range(1, 41):
        for m in range(1, n + 1):
            proof = tlog.consistency_proof(m, d[:n])
            assert tlog.verify_consistency(m, n, roots[m], roots[n], proof)
            assert not tlog.verify_consistency(m, n, roots[m - 1], roots[n], proof)
            if m < n:
                assert not tlog.verify_consistency(m, n, roots[m], roots[n - 1], proof)
                assert not tlog.verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                assert not tlog.verify_consistency(m, n, roots[m], roots[n], proof + [roots[0]])
            for k in range(len(proof)):
                bad = list(proof)
                bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
                assert not tlog.verify_consistency(m, n, roots[m], roots[n], bad)
    assert tlog.consistency_proof(3, d[:7]) == [d[2], d[3], tlog.mth(d[:2]), tlog.mth(d[4:7])]  # RFC 9162 §2.1.5


def test_the_independent_code_imports_nothing_of_the_project():
    path = Path(tlog.__file__)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and node.module, "a relative import"
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert top == "cryptography" or top in sys.stdlib_module_names, f"tlog.py imports {name}"


# -- checkpoints and notes --------------------------------------------------------------------------
@pytest.fixture
def keys(tmp_path):
    store = KeyStore(tmp_path / "keys", PASS)
    store.create()
    return store


def test_checkpoint_body_and_parse():
    root = hashlib.sha256(b"root").digest()
    body = checkpoint.checkpoint_body(NAME, 20852163, root, ["ext one"])
    assert body == f"{NAME}\n20852163\n{base64.b64encode(root).decode()}\next one\n"
    assert checkpoint.parse_checkpoint(body) == checkpoint.Checkpoint(NAME, 20852163, root, ("ext one",))
    assert tlog.read_checkpoint(body) == (NAME, 20852163, root, ["ext one"])
    spec = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"  # tlog-checkpoint
    assert checkpoint.parse_checkpoint(spec).size == 20852163
    assert checkpoint.checkpoint_body("o", 0, root, []) == f"o\n0\n{base64.b64encode(root).decode()}\n"
    b64 = base64.b64encode(root).decode()
    for bad in (f"o\n007\n{b64}\n", f"o\n7\n{b64}", f"o\n7\n{b64}\n\n", f"\n7\n{b64}\n", f"o\n7\n{b64[:-4]}\n",
                f"o\n-7\n{b64}\n", f"o\n７\n{b64}\n", f"o\n7\n{b64}\nx\ty\n", "o\n7\n"):
        with pytest.raises(ValueError):
            checkpoint.parse_checkpoint(bad)
    for args in (("", 1, root, []), ("o", -1, root, []), ("o", 1, root[:31], []), ("o", 1, root, [""]),
                 ("a\nb", 1, root, [])):
        with pytest.raises(ValueError):
            checkpoint.checkpoint_body(*args)


def test_go_note_vector():
    """golang.org/x/mod/sumdb/note's example: key, key ID, verifier key and the signed note."""
    skey = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    note = text + ("\n\u2014 PeterNeumann "
                   "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(skey.split("+", 4)[4])[1:])
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert checkpoint.verifier_key("PeterNeumann", public) == vkey
    assert checkpoint.note_key_id("PeterNeumann", public).hex() == "c74f20a3"
    signature = private.sign(text.encode())
    assert text + "\n" + checkpoint.note_signature_line("PeterNeumann", bytes.fromhex("c74f20a3"), signature) == note
    assert checkpoint.verify_note(note, vkey) == text == tlog.open_note(note, vkey)
    with pytest.raises(ValueError):
        checkpoint.verify_note(note.replace("cryptography", "cryptographY"), vkey)


def test_sign_note_verifies_with_both_and_fails_otherwise(keys, tmp_path):
    root = hashlib.sha256(b"root").digest()
    body = checkpoint.checkpoint_body(NAME, 12, root, [])
    note = keys.sign_note(body, NAME)
    vkey = keys.note_verifier_key(NAME)
    public = keys.signer().private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                                 serialization.PublicFormat.Raw)
    assert vkey == checkpoint.verifier_key(NAME, public)
    assert note.startswith(body + "\n\u2014 " + NAME + " ") and note.endswith("\n")
    assert checkpoint.verify_note(note, vkey) == body == tlog.open_note(note, vkey)
    assert checkpoint.parse_checkpoint(checkpoint.verify_note(note, vkey)).root == root

    other = KeyStore(tmp_path / "other", PASS)
    other.create()
    other_vkey = other.note_verifier_key(NAME)      # the same name, another key: its ID differs
    with pytest.raises(ValueError, match="no signature"):
        checkpoint.verify_note(note, other_vkey)
    assert tlog.open_note(note, other_vkey) is None

    edited = note.replace("\n12\n", "\n13\n")
    with pytest.raises(ValueError, match="does not verify"):
        checkpoint.verify_note(edited, vkey)
    assert tlog.open_note(edited, vkey) is None

    # other keys' signatures are ignored, in any order (signed-note, "Signatures")
    their_line = other.sign_note(body, NAME)[len(body) + 1:]
    witness_line = other.sign_note(body, "witness.example/w1")[len(body) + 1:]
    both = body + "\n" + their_line + witness_line + note[len(body) + 1:]
    assert checkpoint.verify_note(both, vkey) == body == tlog.open_note(both, vkey)
    assert checkpoint.verify_note(both, other_vkey) == body == tlog.open_note(both, other_vkey)

    ours = note[len(body) + 1:]
    sig = base64.b64decode(ours.split(" ")[-1])
    broken = body + "\n" + ours.replace(ours.split(" ")[-1].strip(),
                                        base64.b64encode(sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]).decode())
    with pytest.raises(ValueError, match="does not verify"):
        checkpoint.verify_note(broken, vkey)
    assert tlog.open_note(broken, vkey) is None
    for bad in (body + ours, body + "\n" + ours.replace("\u2014", "-"), body + "\n" + ours[:-1]):
        with pytest.raises(ValueError):
            checkpoint.verify_note(bad, vkey)


def test_sign_note_refuses_bad_text_and_names(keys):
    for body, name in (("no newline", NAME), ("", NAME), ("a\tb\n", NAME), ("ok\n", "with space"),
                       ("ok\n", "a+b"), ("ok\n", "")):
        with pytest.raises(ValueError):
            keys.sign_note(body, name)
    vkey = keys.note_verifier_key(NAME)
    name, key_id, key = vkey.split("+", 2)
    with pytest.raises(ValueError):
        checkpoint.verify_note(keys.sign_note("x\n", NAME), f"{name}+{int(key_id, 16) ^ 1:08x}+{key}")


def test_buckets_hashed_a_range_at_a_time_hash_as_one(monkeypatch):
    """The buckets are hashed _HASHED at a time (memory): ranges that do not divide the
    buckets evenly give the hashes of one pass, and each is its bucket's own hash."""
    records = make_records(3_000, seed=11)
    whole = build(records, 10).hashes
    monkeypatch.setattr(vmap, "_HASHED", 520)       # 1,024 buckets: a range of 520, then one of 504
    assert (build(records, 10).hashes == whole).all()
    for b in (0, 519, 520, 1023):
        lo, hi = vmap.bucket_range(b, 10)
        entries = sorted((r, i, h) for r, (i, h) in records.items() if lo <= r and (hi is None or r < hi))
        assert whole[b].tobytes() == bucket_hash([entry_bytes(*e) for e in entries])
