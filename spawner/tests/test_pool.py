"""The GPU pool: id parsing and allocation rules."""

import pytest

from gpudockerspawner.pool import GPUPool, PoolError, parse_gpu_ids

UUID = "GPU-5f1b0c2e-8a4d-4f3e-9b1a-0c2d3e4f5a6b"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("012", ["0", "1", "2"]),
        ("0,1,2", ["0", "1", "2"]),
        ("10, 11", ["10", "11"]),
        (["0", UUID], ["0", UUID]),
        (f"MIG-{UUID[4:]}", [f"MIG-{UUID[4:]}"]),
        ("", []),
    ],
)
def test_gpu_ids_are_read_in_every_form(value, expected):
    assert parse_gpu_ids(value) == expected


@pytest.mark.parametrize(("value", "message"),
                         [("0,0", "more than once"), ("0,gpu1", "malformed"), (["a b"], "malformed")])
def test_bad_gpu_ids_are_refused(value, message):
    with pytest.raises(PoolError, match=message):
        parse_gpu_ids(value)


def test_exclusive_pool_never_double_books_and_refuses_when_full():
    pool = GPUPool(["0", "1", "2"])
    got = [pool.allocate(user, 1) for user in ("a", "b", "c")]
    assert sorted(gpu for ids in got for gpu in ids) == ["0", "1", "2"]
    assert pool.allocate("d", 1) is None
    pool.release("b")
    assert pool.allocate("d", 1) == got[1]


def test_shared_pool_picks_the_least_loaded_gpu():
    pool = GPUPool(["0", "1"], users_per_gpu=2)
    assert [pool.allocate(user, 1) for user in "abc"] == [["0"], ["1"], ["0"]]


def test_claim_restores_an_assignment_and_refuses_a_taken_gpu():
    pool = GPUPool(["0", "1"])
    assert pool.claim("a", ["1"]) == []
    assert pool.claim("b", ["1", "7"]) == ["1", "7"]
    assert pool.allocate("b", 1) == ["0"]


KINDS = {"MIG-a": "A100 MIG 1g.10gb", "MIG-b": "A100 MIG 1g.10gb", "MIG-c": "A100 MIG 3g.40gb", "GPU-d": "RTX 4090",
         "GPU-e": "RTX 4090"}


def test_a_server_gets_units_of_the_kind_it_asked_for_in_order_of_preference():
    pool = GPUPool(list(KINDS), kinds=KINDS)
    assert pool.allocate("ann/", 1, kinds=["RTX 4090"]) == ["GPU-d"]
    assert pool.allocate("bob/", 2, kinds=["A100 MIG 3g.40gb", "A100 MIG 1g.10gb"]) == ["MIG-a", "MIG-b"]  # 1 3g
    assert pool.allocate("cy/", 1, kinds=["A100 MIG 1g.10gb"]) is None  # never another kind instead
    assert (pool.free_gpus("RTX 4090"), pool.free_gpus(), pool.count("A100 MIG 1g.10gb")) == (1, 2, 2)
    # Any kind: the first, in pool order, with enough free; none that a waiter before holds back.
    assert pool.allocate("dee/", 1, avoid=["A100 MIG 3g.40gb"]) == ["GPU-e"]
    assert pool.allocate("eve/", 1) == ["MIG-c"]
    assert pool.allocate("fay/", 1) is None


def test_two_units_of_a_server_are_of_one_kind():
    pool = GPUPool(list(KINDS), kinds=KINDS)
    assert pool.allocate("ann/", 2) == ["MIG-a", "MIG-b"]
    assert pool.allocate("bob/", 2) == ["GPU-d", "GPU-e"]  # not the 3g.40gb and a 4090
    assert pool.allocate("cy/", 2) is None and pool.free_gpus() == 1
