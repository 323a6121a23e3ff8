"""verify_consistency (RFC 9162 §2.1.4.2) accepts the proofs of §2.1.4.1, written here straight
from the definition, for every pair of small tree sizes, and refuses altered ones."""
from __future__ import annotations

import hashlib

import pytest

from trust.merkle import verify_consistency


def sha(b):
    return hashlib.sha256(b).digest()


def split(n):  # the largest power of two smaller than n
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d):
    if len(d) == 1:
        return sha(b"\x00" + d[0])
    k = split(len(d))
    return sha(b"\x01" + mth(d[:k]) + mth(d[k:]))


def subproof(m, d, b):
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = split(n)
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


LEAVES = [bytes([i]) * 3 for i in range(20)]
PAIRS = [(m, n) for n in range(1, 21) for m in range(1, n + 1)]


@pytest.mark.parametrize(("m", "n"), PAIRS)
def test_the_proof_of_the_definition_verifies_and_no_altered_one_does(m, n):
    first, second = mth(LEAVES[:m]), mth(LEAVES[:n])
    proof = subproof(m, LEAVES[:n], True)
    verify_consistency(m, n, first, second, proof)
    assert (proof == []) == (m == n)
    for i in range(len(proof)):
        flipped = [*proof[:i], bytes([proof[i][0] ^ 1]) + proof[i][1:], *proof[i + 1:]]
        with pytest.raises(ValueError):
            verify_consistency(m, n, first, second, flipped)
    for short in (proof[:-1], proof[1:]) if proof else ():
        with pytest.raises(ValueError):
            verify_consistency(m, n, first, second, short)
    with pytest.raises(ValueError):
        verify_consistency(m, n, first, second, [*proof, second])
    with pytest.raises(ValueError):
        verify_consistency(m, n, mth(LEAVES[1:m + 1]), second, proof)        # another first tree
    with pytest.raises(ValueError):
        verify_consistency(m, n, first, sha(second), proof)


def test_sizes_outside_the_rfc_are_refused_with_a_reason():
    root = mth(LEAVES[:3])
    with pytest.raises(ValueError, match="0 < first size"):
        verify_consistency(0, 3, hashlib.sha256(b"").digest(), root, [])
    with pytest.raises(ValueError, match="0 < first size"):
        verify_consistency(4, 3, mth(LEAVES[:4]), root, [root])
    with pytest.raises(ValueError, match="equal tree sizes is empty"):
        verify_consistency(3, 3, root, root, [root])
    with pytest.raises(ValueError, match="roots differ"):
        verify_consistency(3, 3, root, mth(LEAVES[:2]), [])
    with pytest.raises(ValueError, match="32 bytes"):
        verify_consistency(2, 3, mth(LEAVES[:2]), root, [b"short"])
    verify_consistency(3, 3, root, root, [])
