"""DenseFlow's coupling network: dense block, Nyström attention, BatchNorm fusion."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from gflow import nets
from gflow import examples
from tests.conftest import REPO


def _built(net, shape):
  net.build(shape)
  return examples.randomize(net, scale=0.2)


@pytest.mark.parametrize("make,shape", [
    (lambda: nets.DenseBlock(6, depth=2, growth=4), (2, 4, 4, 3)),
    (lambda: nets.DenseBlock(6, depth=2, growth=4, gated=False), (2, 4, 4, 3)),
    (lambda: nets.NystromAttention(5, embed_dim=4, num_landmarks=4), (2, 4, 4, 3)),
    (lambda: nets.DenseFlowCouplingNet(6, width=8, depth=2, growth=4, embed_dim=4),
     (2, 4, 4, 3)),
    (lambda: nets.CrossUnitNet(2), (2, 4, 4, 3)),
])
def test_config_round_trip_gives_the_same_output(make, shape):
  net = _built(make(), shape)
  clone = net.__class__.from_config(net.get_config())
  clone.build(shape)
  clone.set_weights(net.get_weights())
  x = tf.random.normal(shape)
  np.testing.assert_allclose(clone(x), net(x), rtol=1e-5, atol=1e-6)


def test_coupling_net_starts_at_zero_and_has_the_expected_parameter_count():
  c1, out, w, depth, growth, e = 6, 12, 48, 7, 64, 24
  net = nets.DenseFlowCouplingNet(out, width=w, depth=depth, growth=growth, embed_dim=e)
  net.build((None, 8, 8, c1))
  assert float(tf.reduce_max(tf.abs(net(tf.random.normal([2, 8, 8, c1]))))) == 0.
  widths = [w + i * growth for i in range(depth)]
  dense = (sum(k * k + k for k in widths)                      # 1x1 convs, bias
           + sum(9 * k * growth + growth for k in widths)      # 3x3 convs, bias
           + (w + depth * growth) * 3 * w + 3 * w)             # gated 1x1
  attention = w * 3 * e + 3 * e + e * w + w
  blend = 2 * w * w  # BatchNorm-ReLU-Conv over the two branches, back to w, no bias
  expected = (c1 * w + w) + dense + attention + 2 * (2 * w) + blend + (w * out + out)
  assert sum(int(np.prod(v.shape)) for v in net.trainable_weights) == expected


def test_nystrom_with_every_token_a_landmark_is_exact_softmax_attention():
  att = _built(nets.NystromAttention(8, embed_dim=6, num_landmarks=16, pinv_iterations=20),
               (2, 4, 4, 5))
  x = tf.random.normal([2, 4, 4, 5])
  exact = att(x, exact=True)
  np.testing.assert_allclose(att(x), exact, atol=5e-4)
  att.pinv_iterations = 6  # the paper's setting is already close here
  assert float(tf.reduce_max(tf.abs(att(x) - exact))) < 0.05


def test_nystrom_attends_over_pixels_not_over_scrambled_rows():
  """Each output pixel depends on every input pixel (global context), and moving the
  image content moves the output with it where the landmarks are exact."""
  att = _built(nets.NystromAttention(4, embed_dim=4, num_landmarks=16, pinv_iterations=20),
               (1, 4, 4, 3))
  x = tf.random.normal([1, 4, 4, 3])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = att(x)[0, 0, 0]
  assert np.all(np.abs(tape.gradient(y, x).numpy()).sum(-1) > 0)
  rolled = tf.roll(x, shift=1, axis=1)
  np.testing.assert_allclose(att(rolled), tf.roll(att(x), shift=1, axis=1), atol=1e-3)


def _matmul_flops(fn, x):
  graph = tf.function(fn).get_concrete_function(x).graph
  flops, largest = 0, 0
  for op in graph.get_operations():
    for t in op.outputs:
      if t.shape.rank and t.shape.is_fully_defined():
        largest = max(largest, int(np.prod(t.shape)))
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
      a = op.inputs[0].shape
      transposed = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
      flops += 2 * int(np.prod(op.outputs[0].shape)) * int(a[-2] if transposed else a[-1])
  return flops, largest


def test_nystrom_cost_is_linear_in_the_number_of_pixels():
  att = nets.NystromAttention(8, embed_dim=8, num_landmarks=4)
  att.build((None, None, None, 8))
  small = _matmul_flops(att, tf.TensorSpec([1, 32, 32, 8]))
  large = _matmul_flops(att, tf.TensorSpec([1, 64, 64, 8]))
  assert 3.9 < large[0] / small[0] < 4.1  # 4x the pixels, 4x the work
  n = 64 * 64
  assert large[1] < n * n / 16  # nothing near an N x N attention matrix
  exact = _matmul_flops(lambda x: att(x, exact=True), tf.TensorSpec([1, 64, 64, 8]))
  assert exact[1] >= n * n and exact[0] > 20 * large[0]


def test_nystrom_graph_has_no_pixel_by_pixel_tensor():
  """The paper's setting at N = 32·32 = 1024 tokens: no traced tensor has two axes of
  size N (the exact path does, as a check of the check)."""
  att = nets.NystromAttention(48)
  att.build((None, 32, 32, 48))
  spec, n = tf.TensorSpec([2, 32, 32, 48]), 32 * 32

  def square(fn):
    ops = tf.function(fn).get_concrete_function(spec).graph.get_operations()
    return [op.name for op in ops for t in op.outputs
            if t.shape.rank and list(t.shape).count(n) >= 2]

  assert square(att) == []
  assert square(lambda x: att(x, exact=True))


def test_nystrom_with_unknown_image_size():
  att = nets.NystromAttention(4, embed_dim=4, num_landmarks=4)
  att.build((None, None, None, 3))
  fn = tf.function(att, input_signature=[tf.TensorSpec([None, None, None, 3])])
  x = tf.random.normal([2, 4, 6, 3])
  np.testing.assert_allclose(fn(x), att(x), rtol=1e-5, atol=1e-6)
  with pytest.raises(tf.errors.InvalidArgumentError, match="divisible"):
    fn(tf.zeros([1, 3, 3, 3]))
  with pytest.raises(ValueError, match="got 5x5 = 25 pixels"):
    att(tf.zeros([1, 5, 5, 3]))


def test_batchnorm_training_and_inference_modes():
  net = _built(nets.DenseFlowCouplingNet(4, width=8, depth=1, growth=4, embed_dim=4),
               (8, 4, 4, 2))
  x = tf.random.normal([8, 4, 4, 2]) * 3 + 1
  before = net.norm.moving_mean.numpy().copy()
  before_var = net.norm.moving_variance.numpy().copy()
  train = net(x, training=True)
  assert not np.allclose(net.norm.moving_mean.numpy(), before)  # statistics updated
  assert not np.allclose(net.norm.moving_variance.numpy(), before_var)
  after = net.norm.moving_mean.numpy().copy()
  infer = net(x, training=False)
  np.testing.assert_array_equal(net.norm.moving_mean.numpy(), after)  # not in inference
  assert not np.allclose(train, infer)
  # training mode normalises by the batch: one example's output depends on the others
  np.testing.assert_allclose(net(x[:4], training=False), infer[:4], rtol=1e-5, atol=1e-6)
  assert not np.allclose(net(x[:4], training=True), train[:4], atol=1e-4)


_TWO_REPLICAS = """
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from gflow import nets
from gflow import examples
x = tf.random.stateless_normal([8, 4, 4, 2], [1, 2]) * 3 + 1
def make():
  net = nets.DenseFlowCouplingNet(4, width=8, depth=1, growth=4, embed_dim=4)
  net.build((None, 4, 4, 2))
  return examples.randomize(net, scale=0.2)
one = make()
ref = one(x, training=True).numpy()
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
  two = make()
ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(x).unbatch().batch(8))
out = strategy.run(lambda b: two(b, training=True), args=(next(iter(ds)),))
parts = [t.numpy() for t in strategy.experimental_local_results(out)]
assert [len(p) for p in parts] == [4, 4], [p.shape for p in parts]
got = np.concatenate(parts)
np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
np.testing.assert_allclose(two.norm.moving_mean.numpy(), one.norm.moving_mean.numpy(), rtol=1e-5)
np.testing.assert_allclose(two.norm.moving_variance.numpy(), one.norm.moving_variance.numpy(),
                           rtol=1e-5)
print("same")
"""


def test_batchnorm_under_two_replicas_uses_the_global_batch():
  proc = subprocess.run([sys.executable, "-c", _TWO_REPLICAS], check=False, capture_output=True,
                        text=True, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
  assert proc.returncode == 0 and "same" in proc.stdout, proc.stderr[-3000:]


def test_mixed_precision():
  net = nets.DenseFlowCouplingNet(4, width=8, depth=1, growth=4, embed_dim=4,
                                  dtype="mixed_bfloat16")
  net.build((None, 4, 4, 2))
  examples.randomize(net, scale=0.2)
  out = net(tf.random.normal([2, 4, 4, 2]), training=True)
  assert out.dtype == tf.bfloat16 and np.all(np.isfinite(tf.cast(out, tf.float32)))
  assert net.norm.moving_mean.dtype == "float32"


def test_bad_arguments():
  with pytest.raises(ValueError, match="divisible"):
    nets.NystromAttention(4, num_landmarks=3).build((None, 4, 4, 2))
  with pytest.raises(ValueError, match="positive out_channels"):
    nets.DenseFlowCouplingNet(0)
  with pytest.raises(ValueError, match="growth >= 1"):
    nets.DenseBlock(4, growth=0)


def test_mixed_bfloat16_reaches_every_network_of_denseflow_and_no_flow_map():
  """network_dtype: the intra-unit couplings, the g networks and the dequantizer's
  networks compute in bfloat16; ActNorm, the 1x1 convolutions, the dequantizer's own
  base and every variable stay float32, and the bound is float32 and finite."""
  import keras

  from gflow import layers as gl
  from gflow.noise import Noise
  from gflow.train.trainer import build_model
  from tests.test_denseflow import tiny_config
  c = tiny_config()
  c.model.network_dtype = "mixed_bfloat16"
  model = build_model(c, (8, 8, 1))
  layers = model.layer._flatten_layers()
  convs = [l for l in layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
  paths = {l.path: l.compute_dtype for l in convs}
  assert any("g_1" in p for p in paths) and any("dequantizer" in p for p in paths), paths
  assert set(paths.values()) == {"bfloat16"}, {p: d for p, d in paths.items()
                                              if d != "bfloat16"}
  maps = [l for l in layers if isinstance(l, (gl.ActNormLayer, gl.Conv1x1Layer,
                                               gl.VariationalDequantization))]
  assert maps and {l.compute_dtype for l in maps} == {"float32"}
  assert {v.dtype for v in model.layer.variables} <= {"float32", "bool", "int32"}
  x = tf.cast(tf.random.stateless_uniform([4, 8, 8, 1], [1, 2], 0, 256, tf.int32), tf.float32)
  bpd = model.bits_per_dim(x + 0.5, seed=Noise([3, 4]), training=True)
  assert bpd.dtype == tf.float32 and np.all(np.isfinite(bpd.numpy()))
