"""NanoFlow's parameter sharing (gflow.nets.sharing) on Glow's, WaveFlow's and DenseFlow's
coupling networks: one shared object, identity at the start, the contract, the parameter
formula and NanoFlow's published counts, synthesis, checkpoints and training."""

import functools
import math
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from gflow import examples, testing
from gflow import layers as gl
from gflow import nets
from gflow.nets.sharing import (SharedFlowNetwork, build_shared_networks,
                                folded_parameter_count, shared_networks, sharing_factory)
from gflow.train.checkpoint import model_variables, trackable
from gflow.train.trainer import build_model
from gflow.train.validate import ConfigError, validate
from tests.conftest import REPO, glow_config, run_cli

SHARED = ["naive", "decomp", "nanoflow"]


def _count(variables):
  return sum(math.prod(v.shape) for v in variables)


def _config(name, arg):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    module = __import__(name)
  finally:
    sys.path.pop(0)
  return module.get_config(arg)


def _couplings(variant, n=2, channels=4, embedding="input,bias,gate", projection="1x1",
               dtype=tf.float32, conditioning_channels=0):
  """n affine couplings over 4x4x`channels` sharing one GlowCNN group, built."""
  factory = sharing_factory(
      functools.partial(nets.GlowCNN, width=8, conditioning_channels=conditioning_channels,
                        dtype=dtype),
      variant, embedding, 3, projection)
  layer = gl.SequentialFlow([gl.CouplingLayer(factory, dtype=dtype) for _ in range(n)],
                            dtype=dtype)
  layer.build((None, 4, 4, channels))
  build_shared_networks(layer)
  return layer


def _x(shape, seed=0, dtype=tf.float32):
  return tf.constant(np.random.RandomState(seed).randn(*shape), dtype)


@pytest.mark.parametrize("variant", SHARED)
def test_a_step_on_flow_1s_loss_moves_the_network_flow_2_shares(variant):
  layer = _couplings(variant)
  examples.randomize(layer, scale=0.3, seed=1)
  first, second = layer.flow_layers
  body = first.network.shared.network
  assert second.network.shared.network is body  # one object, not a copy
  x = _x((3, 4, 4, 4))
  before = second(x).numpy()
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(first(x)))
  grads = tape.gradient(loss, first.trainable_variables)
  for v, g in zip(first.trainable_variables, grads):
    if g is not None:
      v.assign_sub(0.05 * g)
  moved = np.abs(second(x).numpy() - before).max()
  assert moved > 1e-3, moved
  if variant != "naive":  # flow 2's own head got no gradient from flow 1's loss
    assert all(g is None or id(v) not in {id(w) for w in second.network.head.weights}
               for v, g in zip(first.trainable_variables, grads))


@pytest.mark.parametrize("variant", SHARED)
def test_every_flow_starts_as_the_identity(variant):
  c = glow_config()
  c.model.update(levels=2, steps=2, width=8, sharing=variant, share_across="model",
                 flow_embedding="input,bias,gate")
  model = build_model(c, (8, 8, 1))
  members = [l for l in model.layer._flatten_layers() if isinstance(l, SharedFlowNetwork)]
  assert len(members) == 4
  for m in members:
    shape = m.shared._shapes[m.shared._out_channels.index(m.out_channels)]
    out = m(_x((2,) + shape[1:], seed=3))
    assert np.all(out.numpy() == 0.0), m.name


@pytest.mark.parametrize("variant,embedding,projection", [
    ("naive", "bias", "1x1"), ("decomp", "bias", "3x3"), ("nanoflow", "input,bias,gate", "1x1")])
def test_shared_couplings_pass_the_bijector_contract(variant, embedding, projection):
  for dtype, tol in [(tf.float32, 1e-4), (tf.float64, 1e-9)]:
    layer = _couplings(variant, embedding=embedding, projection=projection, dtype=dtype,
                       conditioning_channels=2)
    examples.randomize(layer, scale=0.3, seed=2)
    cond = _x((2, 4, 4, 2), seed=5, dtype=dtype)
    x = _x((2, 4, 4, 4), seed=6, dtype=dtype)
    testing.check_flow_layer(layer, x, 3, conditioning=cond, rtol=tol, atol=tol)
  testing.check_log_det_against_jacobian(layer.bijector(cond), x, 3)


def test_flows_of_different_widths_share_one_body_padded_to_the_widest():
  factory = sharing_factory(functools.partial(nets.GlowCNN, width=8), "nanoflow",
                            "input,gate", 3)
  narrow, wide = gl.CouplingLayer(factory), gl.CouplingLayer(factory)
  narrow.build((None, 4, 4, 4))
  wide.build((None, 2, 2, 8))
  build_shared_networks(narrow)
  body = narrow.network.shared.network
  assert body is wide.network.shared.network
  assert body.conv1.kernel.shape[2] == 4 + 3  # the widest x₁ (4 channels) + the embedding
  for layer, shape in [(narrow, (2, 4, 4, 4)), (wide, (2, 2, 2, 8))]:
    examples.randomize(layer, scale=0.3, seed=4)
    testing.check_flow_layer(layer, _x(shape, seed=7), 3)


def test_a_member_used_before_its_group_is_built_says_what_to_do():
  factory = sharing_factory(functools.partial(nets.GlowCNN, width=8), "decomp")
  layer = gl.CouplingLayer(factory)
  layer.build((None, 4, 4, 4))
  with pytest.raises(ValueError, match="build_shared_networks"):
    layer.network(_x((1, 4, 4, 2)))


def test_a_causal_network_refuses_a_3x3_head_and_bad_choices_are_named():
  wavenet = functools.partial(nets.WaveNet2D, 4, 2, layers=2)
  with pytest.raises(ValueError, match="causal along the height"):
    sharing_factory(lambda out, head=True: wavenet(head=head), "decomp", projection="3x3")
  c = glow_config()
  c.model.sharing, c.model.flow_embedding, c.model.share_across = "nanoflw", "bias,gat", "all"
  with pytest.raises(ConfigError) as e:
    validate(c)
  for hint in ("'nanoflow'", "'gate'", "model.share_across"):
    assert hint in str(e.value)


def _waveflow(variant, k, channels=8, layers=3, embedding_size=16, **extra):
  c = _config("waveflow", "speech8k")
  c.model.update(num_flows=k, height=8, channels=channels, layers=layers, sharing=variant,
                 flow_embedding="bias,gate", flow_embedding_size=embedding_size, **extra)
  return build_model(c, (512,))


def test_parameters_follow_the_formula_and_grow_by_the_per_flow_parts_only():
  """Counts of K = 8, 16, 32, 48 WaveFlows against the formula of each variant, from
  separately built parts: none K·P_net, naive P_net, decomp P_body + K·P_head, nanoflow
  P_body + Σ_j P(proj_j) + K·(d + gates + P_head), each plus the mel upsampler."""
  c, layers, d = 8, 3, 16
  n_mels = _config("waveflow", "speech8k").model.n_mels
  net = nets.WaveNet2D(c, n_mels, layers=layers)
  net.build((None, 8, None, 1))
  body = nets.WaveNet2D(c, n_mels, layers=layers, head=False)
  body.build((None, 8, None, 1))
  head = nets.ZeroConv2D(2, 1)
  head.build((None, 8, None, c))
  p_net, p_body, p_head = (_count(l.trainable_weights) for l in (net, body, head))
  p_proj = layers * (d * 2 * c + 2 * c)
  per_flow = {"none": p_net, "naive": 0, "decomp": p_head,
              "nanoflow": d + layers * c + p_head}
  shared = {"none": 0, "naive": p_net, "decomp": p_body, "nanoflow": p_body + p_proj}
  upsampler = None
  for k in (8, 16, 32, 48):
    for variant in per_flow:
      model = _waveflow(variant, k, c, layers, d)
      count = _count(model.trainable_variables)
      fixed = _count(model.layer.upsampler.trainable_weights)
      upsampler = upsampler or fixed
      assert fixed == upsampler
      assert count == fixed + shared[variant] + k * per_flow[variant], (variant, k, count)
  assert per_flow["nanoflow"] < p_net / 20  # sublinear: a flow costs a small fraction


def test_nanoflows_published_parameter_counts():
  """NanoFlow's README (no weight norm): WaveFlow 64 ch 5.925 M, 128 ch 22.336 M;
  NanoFlow K = 8 (embedding 512) 2.819 M, K = 16 (embedding 1024) 2.845 M, counted with
  the embedding folded into per-flow biases."""
  figures = {}
  for k, size in ((8, 512), (16, 1024)):
    c = _config("waveflow", "ljspeech_128")
    c.model.update(weight_norm=False, sharing="nanoflow", num_flows=k,
                   flow_embedding_size=size)
    figures[k] = folded_parameter_count(build_model(c, (16000,)).layer)
  assert round(figures[8] / 1e6, 3) == 2.819, figures
  assert round(figures[16] / 1e6, 3) == 2.845, figures


def test_gflow_info_counts_a_shared_network_once():
  out = run_cli("info", f"--config={os.path.join(REPO, 'configs', 'glow.py')}:digits",
                "--config.model.sharing=decomp", "--depth=4").stdout
  groups = re.findall(r"^(shared_\d) \(SharedNetwork, decomp\): ([\d,]+) parameters shared "
                      r"by 8 flows$", out, re.M)
  assert [g for g, _ in groups] == ["shared_0", "shared_1"], out
  c = glow_config()
  c.model.sharing = "decomp"
  model = build_model(c, (8, 8, 1))
  bodies = {g.name: _count(g.trainable_weights) for g in shared_networks(model.layer)}
  assert {g: int(n.replace(",", "")) for g, n in groups} == bodies
  members = re.findall(r"^ +shared_flow_network\w* \(SharedFlowNetwork\): ([\d,]+) param", out,
                       re.M)
  assert members and all(int(n.replace(",", "")) < 1000 for n in members), out
  assert f"parameters: {_count(model.trainable_variables):,}" in out.splitlines()


@pytest.mark.parametrize("variant", SHARED)
def test_waveflow_synthesis_of_a_shared_variant_inverts_its_forward_pass(variant):
  model = _waveflow(variant, 2, embedding_size=4)
  examples.randomize(model.layer.flow, scale=0.2, seed=8)
  flow = model.layer.flow
  x = _x((2, 8, 5, 1), seed=9)
  cond = _x((2, 8, 5, 80), seed=10)
  z, _ = flow.forward_and_log_det(x, 3, conditioning=cond)
  back = model._synthesize(tf.constant(z.numpy()), cond)  # row by row, with the caches
  np.testing.assert_allclose(back.numpy(), x.numpy(), atol=2e-4)
  assert np.abs(z.numpy() - x.numpy()).max() > 0.1  # not the identity


def _randomize_networks(layer, seed):
  """Random weights for the shared networks and every flow's own parts (the 1x1
  convolutions' LU factors keep their structure)."""
  nets_ = [l for l in layer._flatten_layers() if isinstance(l, SharedFlowNetwork)]
  for i, net in enumerate(nets_):  # a member's weights include its group's
    for v in net.weights:
      if v.trainable:
        v.assign(tf.cast(np.random.RandomState(seed + i).randn(*v.shape) * 0.1, v.dtype))


@pytest.mark.parametrize("variant", ["decomp", "nanoflow"])
def test_glow_and_denseflow_sample_through_the_inverse_of_their_forward_pass(variant):
  c = glow_config()
  c.model.update(levels=2, steps=2, width=8, sharing=variant, share_across="model",
                 flow_embedding="input,bias,gate")
  glow = build_model(c, (8, 8, 1))
  _randomize_networks(glow.layer, seed=11)
  testing.check_flow_layer(glow.layer, _x((2, 8, 8, 1), seed=12), 3, rtol=2e-4, atol=2e-4)
  d = _config("denseflow", "digits")
  d.model.update(units=(2, 1), modules=(1, 1), width=8, dense_depth=1, dense_growth=4,
                 embed_dim=4, sharing=variant, share_across="model",
                 flow_embedding="input,bias,gate")
  dense = build_model(d, (8, 8, 1))
  assert len(shared_networks(dense.layer)) == 1
  _randomize_networks(dense.layer, seed=13)
  x = dense.generate(3, seed=[1, 2])  # latent → data through every module's inverse
  assert x.shape == (3, 8, 8, 1)


def test_a_checkpoint_restores_every_shared_and_per_flow_variable():
  c = glow_config()
  c.model.update(levels=2, steps=2, width=8, sharing="nanoflow",
                 flow_embedding="input,bias,gate")
  a, b = build_model(c, (8, 8, 1)), build_model(c, (8, 8, 1))
  keys = model_variables(a.layer)
  assert list(keys) == list(model_variables(b.layer))
  assert len({id(v) for v in keys.values()}) == len(keys) == len(a.layer.variables)
  assert any(".shared.network.conv1.kernel" in k for k in keys)
  assert sum(k.endswith(".embedding") for k in keys) == 4
  examples.randomize(a.layer, scale=0.2, seed=14)
  path = tf.train.Checkpoint(model=trackable(keys)).write(os.path.join(
      os.environ.get("TMPDIR", "/tmp"), f"sharing_ckpt_{os.getpid()}"))
  tf.train.Checkpoint(model=trackable(model_variables(b.layer))).read(path).assert_consumed()
  for (k, va), vb in zip(keys.items(), model_variables(b.layer).values()):
    np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=k)
  x = _x((2, 8, 8, 1), seed=15) + 100.
  np.testing.assert_array_equal(a.log_prob(x).numpy(), b.log_prob(x).numpy())


def test_a_nanoflow_glow_learns_through_gflow_train(tmp_path):
  out = run_cli("train", f"--config={os.path.join(REPO, 'configs', 'glow.py')}:digits",
                f"--workdir={tmp_path}", "--config.model.sharing=nanoflow",
                "--config.model.steps=2", "--config.model.width=16",
                "--config.train.num_steps=60", "--config.train.log_every=20",
                "--config.train.warmup_steps=5",
                "--config.train.eval_every=60", "--config.train.sample_every=60",
                "--config.train.jit_compile=False", "--config.eval.num_samples=4").stdout
  losses = [float(v) for v in re.findall(r"loss \(bits/dim\) ([\d.]+)", out)]
  assert len(losses) == 3 and losses[-1] < losses[0] - 0.3, out
  assert re.search(r"^test bits/dim: [\d.]+ ± [\d.]+$", out, re.M), out
