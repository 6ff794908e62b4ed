"""tfds datasets stream from their files (nothing in memory) with an exact, resumable
stream: a real tfds dataset is prepared offline in a temporary data_dir."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from gflow import data as gdata
from gflow.data.tfds_source import crop_and_resize

N_TRAIN, N_TEST = 100, 20


class GflowTinyImages(tfds.core.GeneratorBasedBuilder):
  """100 + 20 random 8x8 grey images, in 3 train shards' worth of examples."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"image": tfds.features.Image(shape=(8, 8, 1))}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(0, N_TRAIN),
            "test": self._generate_examples(1, N_TEST)}

  def _generate_examples(self, seed, n):
    rng = np.random.RandomState(seed)
    for i in range(n):
      yield i, {"image": rng.randint(0, 256, (8, 8, 1), np.uint8)}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = GflowTinyImages(data_dir=data_dir)
  builder.download_and_prepare()
  arrays = {split: tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))["image"]
            for split in ("train", "test")}
  return data_dir, arrays


def _source(data_dir, **kw):
  return gdata.load_tfds("gflow_tiny_images", data_dir=data_dir, online=False,
                         shuffle_buffer=kw.pop("shuffle_buffer", 32), **kw)


def _batches(ds, n):
  return [b["x"].numpy() for b in ds.take(n)]


def _sorted_rows(images):
  flat = np.asarray(images).reshape(len(images), -1)
  return flat[np.lexsort(flat.T[::-1])]


def test_streams_without_holding_the_data(prepared):
  source = _source(prepared[0])
  assert not any(isinstance(v, np.ndarray) for v in vars(source).values())
  assert (source.num_train, source.num_test, source.event_shape) == (N_TRAIN, N_TEST, (8, 8, 1))


def test_every_batch_is_a_function_of_seed_and_step_across_epochs(prepared):
  source = _source(prepared[0])
  full = _batches(source.train_dataset(16, seed=3), 10)  # epoch boundary at step 6.25
  resumed = _batches(source.train_dataset(16, seed=3, start_step=5), 5)
  for a, b in zip(full[5:], resumed):
    np.testing.assert_array_equal(a, b)
  other = _batches(source.train_dataset(16, seed=4), 1)[0]
  assert not np.array_equal(other, full[0])


def test_each_epoch_is_a_permutation_of_the_training_split(prepared):
  data_dir, arrays = prepared
  source = _source(data_dir)
  stream = np.concatenate(_batches(source.train_dataset(20, seed=0), 10))  # two epochs
  levels = np.floor(stream).astype(np.uint8)
  assert np.all(stream - levels < 1) and np.any(stream - levels > 0)  # dequantized
  for epoch in (levels[:N_TRAIN], levels[N_TRAIN:]):
    np.testing.assert_array_equal(_sorted_rows(epoch), _sorted_rows(arrays["train"]))
  assert not np.array_equal(levels[:N_TRAIN], levels[N_TRAIN:])  # reshuffled per epoch
  assert not np.array_equal(levels[:N_TRAIN], arrays["train"])   # shuffled at all


def test_eval_set_in_order_with_fixed_noise_and_a_limit(prepared):
  data_dir, arrays = prepared
  source = _source(data_dir)
  batches = _batches(source.eval_dataset(8, seed=1), 10)
  assert [len(b) for b in batches] == [8, 8, 4]
  x = np.concatenate(batches)
  np.testing.assert_array_equal(np.floor(x).astype(np.uint8), arrays["test"])
  np.testing.assert_array_equal(np.concatenate(_batches(source.eval_dataset(8, seed=1), 10)), x)
  assert sum(len(b) for b in _batches(source.eval_dataset(8, seed=1, limit=5), 10)) == 5


def test_image_size_crops_and_resizes_each_image(prepared):
  data_dir, arrays = prepared
  source = _source(data_dir, image_size=4)
  assert source.event_shape == (4, 4, 1)
  x = np.concatenate(_batches(source.eval_dataset(20, seed=0), 1))
  expected = np.stack([crop_and_resize(tf.constant(im), 4).numpy() for im in arrays["test"]])
  np.testing.assert_array_equal(np.floor(x).astype(np.uint8), expected)


def test_a_model_trains_on_the_stream(prepared, tmp_path, tiny_config):
  from gflow.train import Trainer
  c = tiny_config
  c.data.name, c.data.data_dir = "gflow_tiny_images", prepared[0]
  c.train.num_steps, c.train.init_batch_size, c.eval.batch_size = 3, 32, 8
  c.train.jit_compile = False
  summary = Trainer(c, str(tmp_path), verbose=False).train()
  assert np.isfinite(summary["bits/dim"][0])


class GflowTinySpeech(tfds.core.GeneratorBasedBuilder):
  """One split of 40 int16 clips at 8 kHz; clip i is the constant level 100·(i + 1)."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"speech": tfds.features.Audio(shape=(None,), dtype=np.int16, sample_rate=8000)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for i in range(40):
      yield i, {"speech": np.full(200 + 10 * i, 100 * (i + 1), np.int16)}


def test_speech_streams_segments_and_holds_out_a_fixed_slice(tmp_path, monkeypatch):
  from gflow.data import tfds_source
  data_dir = str(tmp_path)
  GflowTinySpeech(data_dir=data_dir).download_and_prepare()
  monkeypatch.setitem(tfds_source.SPLITS, "gflow_tiny_speech", ("train[:90%]", "train[90%:]"))
  source = gdata.load_tfds("gflow_tiny_speech", data_dir=data_dir, online=False,
                           segment_length=64, shuffle_buffer=8)
  assert isinstance(source, gdata.TfdsAudio) and source.sample_rate == 8000
  assert (source.num_train, source.num_test, source.event_shape) == (36, 4, (64,))
  full = [b["x"].numpy() for b in source.train_dataset(12, seed=2).take(6)]
  resumed = [b["x"].numpy() for b in source.train_dataset(12, seed=2, start_step=2).take(4)]
  for a, b in zip(full[2:], resumed):
    np.testing.assert_array_equal(a, b)
  train_levels = {int(round(r[0] * 32768 / 100)) for r in np.concatenate(full[:3])}
  test = next(iter(source.eval_dataset(8, seed=0)))
  test_levels = {int(round(r[0] * 32768 / 100)) for r in test["x"].numpy()}
  assert len(train_levels) == 36 and len(test_levels) == 4
  assert not train_levels & test_levels  # the held-out slice never trains
  assert all(np.all(r == r[0]) for r in np.concatenate(full))  # one clip per segment
  assert sorted(test["length"].numpy()) == sorted(200 + 10 * (v - 1) for v in test_levels)
