"""The stepwise (serving) scan: its numerics against a plain numpy loop (called directly and
selected with ``impl="stepwise"``), few graph nodes per step, no loop, and its static-length
contract. test_selective_scan.py also runs it, with every other implementation."""

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.ops.chunked_scan import chunked_scan
from mdaf_tf.ops.selective_scan import selective_scan
from mdaf_tf.ops.stepwise_scan import stepwise_scan
from tests.ops.test_selective_scan import random_inputs


def numpy_scan_loops(u, delta, A, B, C, D):
    """The recurrence element by element in float64, straight from its definition:
    h[b,d,n] <- exp(delta[b,t,d] A[d,n]) h[b,d,n] + delta[b,t,d] u[b,t,d] B[b,t,n];
    y[b,t,d] = sum_n C[b,t,n] h[b,d,n] + D[d] u[b,t,d]."""
    u, delta, A, B, C, D = (np.asarray(x, np.float64) for x in (u, delta, A, B, C, D))
    batch, length, d_inner = u.shape
    d_state = A.shape[1]
    y = np.zeros_like(u)
    for b in range(batch):
        for d in range(d_inner):
            h = [0.0] * d_state
            for t in range(length):
                for n in range(d_state):
                    h[n] = (np.exp(delta[b, t, d] * A[d, n]) * h[n]
                            + delta[b, t, d] * u[b, t, d] * B[b, t, n])
                y[b, t, d] = sum(C[b, t, n] * h[n] for n in range(d_state)) + D[d] * u[b, t, d]
    return y


def random_scan_inputs(seed, batch=3, length=7, d_inner=4, d_state=3, dtype=np.float32):
    return random_inputs(np.random.default_rng(seed), batch, length, d_inner, d_state, dtype)


def scan_specs(length, d_inner=4, d_state=3):
    """TensorSpecs of (u, delta, A, B, C, D) with a dynamic batch; ``length`` may be None."""
    return [tf.TensorSpec((None, length, d_inner)), tf.TensorSpec((None, length, d_inner)),
            tf.TensorSpec((d_inner, d_state)), tf.TensorSpec((None, length, d_state)),
            tf.TensorSpec((None, length, d_state)), tf.TensorSpec((d_inner,))]


def graph_nodes(fn, length):
    """Node types of fn's forward graph at one static length, including nested functions."""
    graph_def = tf.function(fn).get_concrete_function(*scan_specs(length)).graph.as_graph_def()
    nodes = [n.op for n in graph_def.node]
    for function in graph_def.library.function:
        nodes += [n.op for n in function.node_def]
    return nodes


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_matches_a_numpy_loop_called_directly_and_through_impl_stepwise(dtype, rtol):
    inputs = random_scan_inputs(0, dtype=dtype)
    expected = numpy_scan_loops(*inputs)
    scale = np.max(np.abs(expected))
    direct = np.asarray(stepwise_scan(*inputs), np.float64)
    # As an export runs it: a tf.function over a static length with a dynamic batch.
    specs = [tf.TensorSpec((None, *x.shape[1:]) if x.ndim == 3 else x.shape, dtype)
             for x in inputs]
    served = tf.function(lambda *xs: selective_scan(*xs, impl="stepwise"),
                         input_signature=specs)
    dispatched = np.asarray(served(*inputs), np.float64)
    for y in (direct, dispatched):
        assert y.shape == expected.shape
        assert np.max(np.abs(y - expected)) <= rtol * scale


def test_impl_stepwise_builds_the_stepwise_graph():
    # The dispatcher really runs stepwise_scan for impl="stepwise": the same ops, no loop.
    dispatched = graph_nodes(lambda *xs: selective_scan(*xs, impl="stepwise"), 30)
    assert sorted(dispatched) == sorted(graph_nodes(stepwise_scan, 30))
    assert not {"While", "StatelessWhile"} & set(dispatched)


def test_each_step_adds_a_handful_of_nodes_and_no_loop():
    short, long = graph_nodes(stepwise_scan, 10), graph_nodes(stepwise_scan, 30)
    per_step = (len(long) - len(short)) / 20
    assert per_step <= 8, per_step
    assert not {"While", "StatelessWhile"} & set(long)


def test_the_chunked_scan_it_replaces_in_exports_runs_a_loop():
    # The reason for the stepwise scan: the chunked one is a tf.scan (a While loop) whose body
    # executes once per chunk at serving time.
    assert {"While", "StatelessWhile"} & set(graph_nodes(chunked_scan, 30))


def test_a_dynamic_length_is_refused_with_a_pointer_to_the_chunked_scan():
    with pytest.raises(ValueError, match="static sequence length.*chunked"):
        tf.function(stepwise_scan).get_concrete_function(*scan_specs(None))


def test_length_zero_gives_the_skip_term_only():
    u = np.zeros((2, 0, 4), np.float32)
    y = stepwise_scan(u, u, -np.ones((4, 3), np.float32), np.zeros((2, 0, 3), np.float32),
                      np.zeros((2, 0, 3), np.float32), np.ones(4, np.float32))
    assert y.shape == (2, 0, 4)
