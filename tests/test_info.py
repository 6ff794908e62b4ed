"""gflow-info: architecture by block and parameter count, from the config alone."""

import re

import ml_collections
import numpy as np
import pytest

from gflow import data as gdata
from tests.conftest import CONFIG, run_cli
from tests.test_denseflow import DF_CONFIG, denseflow_config

NO_NETWORK = {"TFDS_DATA_DIR": "/nonexistent"}  # nothing may touch a dataset


def _count(out):
  return int(re.search(r"^parameters: ([\d,]+)$", out, re.M).group(1).replace(",", ""))


def test_glow_digits_tree_and_count_match_the_model(tiny_config):
  from gflow.train.trainer import build_model
  out = run_cli("info", f"--config={CONFIG}:digits", "--config.model.steps=2",
                "--config.model.width=16", env=NO_NETWORK).stdout
  assert "glow (Flow) for digits images 8x8x1" in out and "level_0" in out
  model = build_model(tiny_config, (8, 8, 1))
  assert _count(out) == sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_glow_cifar10_has_openai_glows_size():
  out = run_cli("info", f"--config={CONFIG}:cifar10", env=NO_NETWORK).stdout
  assert _count(out) == 44_055_408


def test_denseflow_74_10_is_within_5_percent_of_the_reference_build():
  out = run_cli("info", f"--config={DF_CONFIG}:cifar10", env=NO_NETWORK).stdout
  reference = 130_647_294  # the public PyTorch DenseFlow-74-10, dequantization included
  assert abs(_count(out) - reference) / reference < 0.05, _count(out)
  for block, units in [("block0", 6), ("block1", 4), ("block2", 1)]:
    assert len(re.findall(rf"^\s+{block}_unit\d \(SequentialFlow\)", out, re.M)) == units
  assert "dequantizer (VariationalDequantization): 2,39" in out  # reference: ~2.4 M
  assert "latent dimensions: 17,792 (data: 3,072)" in out
  assert len(out.splitlines()) < 100


def test_denseflow_45_6_is_the_smaller_ablation_model():
  from gflow.train.trainer import build_model
  counts = {}
  for arg in ("cifar10_45_6", "digits"):
    c = denseflow_config(arg)
    shape = gdata.event_shape(c.data)
    model = build_model(c, shape)
    counts[arg] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    modules = sum(u * m for u, m in zip(c.model.units, c.model.modules))
    assert modules == {"cifar10_45_6": 45, "digits": 10}[arg]
  assert 60e6 < counts["cifar10_45_6"] < 100e6


def test_event_shapes_come_from_the_config():
  shape = lambda **kw: gdata.event_shape(ml_collections.ConfigDict(kw))  # noqa: E731
  assert shape(name="digits") == (8, 8, 1)
  assert shape(name="downsampled_imagenet/64x64") == (64, 64, 3)
  assert shape(name="celeb_a", image_size=64) == (64, 64, 3)
  assert shape(name="folder", image_size=16, channels=1) == (16, 16, 1)
  with pytest.raises(ValueError, match="Did you mean 'cifar10'"):
    shape(name="cifar1")
  with pytest.raises(ValueError, match="image_size"):
    shape(name="folder", image_size=0)


def test_npz_shape_is_read_from_the_header(tmp_path):
  path = tmp_path / "a.npz"
  np.savez_compressed(path, train=np.zeros((5, 6, 4, 2), np.uint8),
                      test=np.zeros((1, 6, 4, 2), np.uint8))
  assert gdata.event_shape(ml_collections.ConfigDict(dict(name="npz", path=str(path)))) == \
      (6, 4, 2)


@pytest.mark.parametrize("args,message", [
    ([f"--config={DF_CONFIG}:cifar11"], "Unknown denseflow config 'cifar11'"),
    ([f"--config={DF_CONFIG}:digits", "--config.model.growht=3"], "unknown config field"),
])
def test_bad_config_is_one_clear_line(args, message):
  proc = run_cli("info", *args, check=False)
  assert proc.returncode != 0 and message in proc.stderr
