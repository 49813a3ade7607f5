"""Graph-scale behaviour: deep chains and exponentially many paths.

The contract: backward is iterative (a 100 000-node chain must not hit Python's
recursion limit) and visits every node once however many paths lead to it. "Once" is
proven by counting backward calls of a custom Function, not by timing; a node visited
twice raises at once, so an engine that re-walks shared subgraphs fails fast instead
of running for 2^60 steps.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from tinytorch.autograd import Function, Variable


class CountedIdentity(Function):
    """y = x, recording every backward call; a second call for the same node raises."""

    calls: list[int] = []
    received: dict[int, np.ndarray] = {}

    @staticmethod
    def forward(ctx, x):
        # The node's identity travels through the contract's own API (saved tensors).
        ctx.save_for_backward(np.array(_new_tag()))
        return x.copy()

    @staticmethod
    def backward(ctx, grad_output):
        (tag_array,) = ctx.saved_tensors
        tag = int(tag_array)
        if tag in CountedIdentity.received:
            raise AssertionError(
                f"node {tag} visited a second time: backward re-walks shared subgraphs"
            )
        CountedIdentity.calls.append(tag)
        CountedIdentity.received[tag] = np.array(grad_output, copy=True)
        return grad_output


_tags = iter(range(10**9))


def _new_tag() -> int:
    return next(_tags)


def reset_counts() -> None:
    CountedIdentity.calls.clear()
    CountedIdentity.received.clear()


def test_hundred_thousand_node_chain_backward():
    """50 000 multiplications and 50 000 additions: d/dx = c**50 000, no RecursionError."""
    factor, links = 1.00002, 50_000
    x = Variable(np.array(1.0), requires_grad=True)
    y = x
    for _ in range(links):
        y = y * factor
        y = y + 0.5
    limit = sys.getrecursionlimit()
    y.backward()
    assert sys.getrecursionlimit() == limit, "backward must not need a larger recursion limit"
    assert math.isclose(float(x.grad), factor**links, rel_tol=1e-9)


def test_sixty_diamonds_give_the_exact_gradient():
    """Each diamond b = id(a); a' = b*1 + b*1 doubles the gradient: d/dx = 2**60 exactly
    (a power of two, representable in float64), over 2**60 distinct paths."""
    reset_counts()
    x = Variable(np.array(1.0), requires_grad=True)
    a = x
    for _ in range(60):
        b = CountedIdentity.apply(a)
        a = b * 1.0 + b * 1.0
    a.backward()
    assert float(x.grad) == 2.0**60
    assert len(CountedIdentity.calls) == 60


def test_every_node_of_a_chain_is_visited_once_in_reverse_order():
    reset_counts()
    x = Variable(np.array([1.0, 2.0]), requires_grad=True)
    y = x
    for _ in range(500):
        y = CountedIdentity.apply(y)
    y.sum().backward()
    assert len(CountedIdentity.calls) == 500
    assert CountedIdentity.calls == sorted(CountedIdentity.calls, reverse=True)
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_a_node_with_many_consumers_is_visited_once_with_the_summed_gradient():
    """Reverse topological order: a node runs only after all 50 consumers delivered."""
    reset_counts()
    x = Variable(np.array([1.0, 2.0]), requires_grad=True)
    shared = CountedIdentity.apply(x)
    total = shared * 0.0
    for i in range(1, 51):
        total = total + shared * float(i)
    total.sum().backward()
    assert len(CountedIdentity.calls) == 1
    expected = sum(range(1, 51))  # d total / d shared
    (received,) = CountedIdentity.received.values()
    np.testing.assert_array_equal(received, [expected, expected])
    np.testing.assert_array_equal(x.grad, [expected, expected])


def test_wide_and_deep_lattice_visits_each_node_once():
    """A 30 x 4 lattice where every node feeds every node of the next layer."""
    reset_counts()
    x = Variable(np.array(1.0), requires_grad=True)
    layer = [CountedIdentity.apply(x * 1.0) for _ in range(4)]
    for _ in range(29):
        mixed = layer[0] + layer[1] + layer[2] + layer[3]
        layer = [CountedIdentity.apply(mixed * 0.25) for _ in range(4)]
    out = layer[0] + layer[1] + layer[2] + layer[3]
    out.backward()
    assert len(CountedIdentity.calls) == 30 * 4
    # Each layer maps the sum s to 4 copies of s/4, whose sum is s again; the first
    # layer takes x to 4 copies of x, so out = 4x.
    assert float(x.grad) == 4.0


def test_consumers_outside_the_backpropagated_graph_are_ignored():
    """`shared` also feeds a graph that is never backpropagated: backward from `a` must
    not wait for gradients from it (a dependency count over every consumer would)."""
    reset_counts()
    x = Variable(np.array([1.0, 2.0]), requires_grad=True)
    shared = CountedIdentity.apply(x * 2.0)
    unrelated = shared * 5.0  # noqa: F841 - alive, but not part of a's graph
    a = (shared * 3.0).sum()
    a.backward()
    assert len(CountedIdentity.calls) == 1
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_a_non_leaf_used_twice_by_one_op():
    """h * h: one consumer, two edges into h; h's gradient is 2h, reached once."""
    reset_counts()
    x = Variable(np.array([0.5, -1.0]), requires_grad=True)
    h = CountedIdentity.apply(x * 3.0)
    (h * h).sum().backward()
    assert len(CountedIdentity.calls) == 1
    np.testing.assert_allclose(x.grad, 2 * (3.0 * x.data) * 3.0)
