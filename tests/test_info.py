"""gflow-info: architecture by block and parameter count, from the config alone."""

import os
import re
import sys
import time

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gflow import data as gdata
from tests.conftest import REPO, run_cli
from tests.test_denseflow import DF_CONFIG, denseflow_config

BLOCKED_TFDS = ("raise ImportError('gflow-info imported tensorflow_datasets: it must read "
                "nothing but the config')\n")


@pytest.fixture(scope="module")
def no_data_env(tmp_path_factory):
  """An environment in which importing tensorflow_datasets fails and tfds has no data
  directory: gflow-info must succeed anyway, since it never touches a dataset."""
  site = tmp_path_factory.mktemp("no_tfds")
  (site / "tensorflow_datasets").mkdir()
  (site / "tensorflow_datasets" / "__init__.py").write_text(BLOCKED_TFDS)
  path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
  return {"PYTHONPATH": path, "TFDS_DATA_DIR": "/nonexistent"}


def _count(out):
  return int(re.search(r"^parameters: ([\d,]+)$", out, re.MULTILINE).group(1).replace(",", ""))


def _glow_config(arg):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    import glow as glow_configs
  finally:
    sys.path.pop(0)
  return glow_configs.get_config(arg)


def test_glow_digits_tree_and_count_match_the_model(no_data_env):
  from gflow.train.trainer import build_model
  out = run_cli("info", "--config=configs/glow.py:digits", env=no_data_env).stdout
  lines = out.splitlines()
  assert lines[0] == "glow (Flow) for digits images 8x8x1"
  assert re.search(r"^level_0 \(SequentialFlow\): [\d,]+ parameters$", out, re.MULTILINE)
  # 8 identical steps of flow, one line; their sub-layers indented below it
  assert re.search(r"^  \w+ \(SequentialFlow\) × 8: [\d,]+ parameters each$", out, re.MULTILINE)
  assert re.search(r"^    \w+ \(CouplingLayer\): [\d,]+ parameters$", out, re.MULTILINE)
  assert re.search(r"^  \w+ \(FactorOutLayer\): ", out, re.MULTILINE)
  model = build_model(_glow_config("digits"), (8, 8, 1))
  expected = sum(v.numpy().size for v in model.trainable_variables)
  assert f"parameters: {expected:,}" in lines
  assert _count(out) == expected
  assert re.search(r"^non-trainable: [\d,]+$", out, re.MULTILINE)


def test_glow_cifar10_has_openai_glows_size_without_touching_tfds(no_data_env):
  start = time.monotonic()
  out = run_cli("info", "--config=configs/glow.py:cifar10", env=no_data_env, timeout=120).stdout
  assert time.monotonic() - start < 60
  assert out.splitlines()[0] == "glow (Flow) for cifar10 images 32x32x3"
  assert "parameters: 44,055,408" in out.splitlines()
  assert "(SequentialFlow) × 32: " in out and len(out.splitlines()) < 40


def test_the_tree_depth_is_a_flag(no_data_env):
  out = run_cli("info", "--config=configs/glow.py:digits", "--depth=1", env=no_data_env).stdout
  tree = [l for l in out.splitlines()[2:] if l.startswith("  ")]
  assert tree and all(not l.startswith("    ") for l in tree)
  assert "parameters: " in out


@pytest.mark.slow  # builds the 74-10 model (12 s); the 45-6 count runs by default
def test_denseflow_74_10_is_within_5_percent_of_the_reference_build(no_data_env):
  out = run_cli("info", f"--config={DF_CONFIG}:cifar10", env=no_data_env).stdout
  reference = 130_647_294  # the public PyTorch DenseFlow-74-10, dequantization included
  assert abs(_count(out) - reference) / reference < 0.05, _count(out)
  for block, units in [("block0", 6), ("block1", 4), ("block2", 1)]:
    assert len(re.findall(rf"^\s+{block}_unit\d \(SequentialFlow\)", out, re.MULTILINE)) == units
  assert "dequantizer (VariationalDequantization): 2,39" in out  # reference: ~2.4 M
  assert "latent dimensions: 17,792 (data: 3,072)" in out
  assert len(out.splitlines()) < 100  # 74 modules, collapsed


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


@pytest.mark.parametrize("args,message", [
    (["--config=configs/glow.py:cifar11"], "Unknown glow config 'cifar11'"),
    ([f"--config={DF_CONFIG}:cifar11"], "Unknown denseflow config 'cifar11'"),
    (["--config=configs/glow.py:digits", "--config.model.widht=3"],
     'unknown config field .*Did you mean "width"'),
    (["--config=configs/glow.py:digits", "--config.model.name=glwo"],
     "Unknown model 'glwo'. Did you mean 'glow'"),
    (["--config=configs/glow.py:digits", "--config.data.name=cifar1"],
     "Unknown dataset 'cifar1'. Did you mean 'cifar10'"),
    (["--config=configs/nope.py:digits"], "no config file 'configs/nope.py'"),
])
def test_bad_config_is_one_clear_line(args, message):
  proc = run_cli("info", *args, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and re.search(message, errors[0]), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr and proc.stdout == ""


# -- event_shape: (H, W, C) from config.data alone --------------------------------------


def _shape(**fields):
  return gdata.event_shape(ml_collections.ConfigDict(fields))


@pytest.mark.parametrize("fields,expected", [
    ({"name": "digits"}, (8, 8, 1)),
    ({"name": "cifar10"}, (32, 32, 3)),
    ({"name": "downsampled_imagenet/32x32"}, (32, 32, 3)),
    ({"name": "downsampled_imagenet/64x64"}, (64, 64, 3)),
    ({"name": "celeb_a", "image_size": 64}, (64, 64, 3)),  # centre crop + resize, as loaded
    ({"name": "celeb_a", "image_size": 0}, (218, 178, 3)),  # as stored
    ({"name": "mnist"}, (28, 28, 1)),
    ({"name": "folder", "image_size": 16, "channels": 1}, (16, 16, 1)),
])
def test_event_shapes_come_from_the_config(fields, expected):
  assert _shape(**fields) == expected


def test_the_configs_datasets_all_have_a_shape():
  for arg in ("digits", "cifar10"):
    assert _shape(**_glow_config(arg).data.to_dict())
  for arg in ("digits", "cifar10", "imagenet32", "imagenet64", "celeba"):
    expected = {"digits": 8, "imagenet64": 64, "celeba": 64}.get(arg, 32)
    assert gdata.event_shape(denseflow_config(arg).data)[:2] == (expected, expected)


def test_unknown_names_and_bad_fields_are_clear():
  with pytest.raises(ValueError, match="Unknown dataset 'cifar1'. Did you mean 'cifar10'?"):
    _shape(name="cifar1")
  with pytest.raises(ValueError, match="downsampled_imagenet/32x32"):  # lists the valid ones
    _shape(name="imagenet")
  with pytest.raises(ValueError, match=r"image_size must be a whole number >= 0 .*; got -1\."):
    _shape(name="cifar10", image_size=-1)
  with pytest.raises(ValueError, match="channels must be 1 or 3; got 2"):
    _shape(name="folder", image_size=8, channels=2)


def test_the_unknown_dataset_helper_is_shared_with_load():
  with pytest.raises(ValueError) as shape_error:
    _shape(name="digitz")
  with pytest.raises(ValueError) as load_error:
    gdata.load(ml_collections.ConfigDict({"name": "digitz"}))
  assert str(shape_error.value) == str(load_error.value)


def test_npz_shape_is_read_from_the_header(tmp_path):
  path = tmp_path / "a.npz"
  np.savez_compressed(path, train=np.zeros((5, 6, 4, 2), np.uint8),
                      test=np.zeros((1, 6, 4, 2), np.uint8))
  assert _shape(name="npz", path=str(path)) == (6, 4, 2)
  grey = tmp_path / "grey.npz"  # [N, H, W]: the loader adds the channel axis
  np.savez(grey, train=np.full((3, 5, 7), 9, np.uint8), test=np.ones((1, 5, 7), np.uint8))
  config = ml_collections.ConfigDict({"name": "npz", "path": str(grey)})
  assert gdata.event_shape(config) == gdata.load(config).event_shape == (5, 7, 1)


def test_npz_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="No .npz file at"):
    _shape(name="npz", path=str(tmp_path / "missing.npz"))
  np.savez(tmp_path / "x.npz", images=np.zeros((2, 4, 4, 1), np.uint8))
  with pytest.raises(ValueError, match=r"needs arrays 'train' and 'test'; it holds \['images'\]"):
    _shape(name="npz", path=str(tmp_path / "x.npz"))
  (tmp_path / "text.npz").write_text("not a zip")
  with pytest.raises(ValueError, match="is not an .npz file"):
    _shape(name="npz", path=str(tmp_path / "text.npz"))
  np.savez(tmp_path / "flat.npz", train=np.zeros((2, 16), np.uint8))
  with pytest.raises(ValueError, match=r"expected images \[N, H, W, C\].*got shape \(2, 16\)"):
    _shape(name="npz", path=str(tmp_path / "flat.npz"))


def test_folder_without_image_size_reads_one_header(tmp_path):
  (tmp_path / "sub").mkdir()
  for i in range(3):
    Image.new("RGB", (12, 10), (i, 0, 0)).save(tmp_path / "sub" / f"{i}.png")
  for channels in (1, 3):
    config = ml_collections.ConfigDict(
        {"name": "folder", "path": str(tmp_path), "image_size": 0, "channels": channels})
    assert gdata.event_shape(config) == gdata.load(config).event_shape == (10, 12, channels)
  with pytest.raises(FileNotFoundError, match="does not exist.*image_size"):
    _shape(name="folder", path=str(tmp_path / "nope"), image_size=0)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no images.*set --config.data.image_size"):
    _shape(name="folder", path=str(tmp_path / "empty"), image_size=0)
