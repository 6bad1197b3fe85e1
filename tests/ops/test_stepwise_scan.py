"""The stepwise (serving) scan: few graph nodes per step, no loop, and its static-length contract.

Its numerics are tested with every other implementation in test_selective_scan.py."""

import numpy as np
import pytest
import tensorflow as tf

from mdaf_tf.ops.chunked_scan import chunked_scan
from mdaf_tf.ops.stepwise_scan import stepwise_scan


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
