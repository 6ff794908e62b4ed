"""Datasets and the deterministic, resumable input pipeline."""

import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from gflow import data as gdata


def test_digits_are_embedded_scaled_and_split_once():
  a, b = gdata.load_digits(), gdata.load_digits()
  assert a.train.shape[1:] == (8, 8, 1) and a.train.dtype == np.uint8
  assert len(a.train) + len(a.test) == 1797 and len(a.test) == 359
  assert a.train.max() == 255 and len(np.unique(a.train)) == 17
  np.testing.assert_array_equal(a.test, b.test)


def test_pipeline_resumes_at_the_same_batch_and_noise():
  images = gdata.load_digits().train
  full = list(gdata.train_dataset(images, 32, seed=3).take(50).as_numpy_iterator())
  resumed = list(gdata.train_dataset(images, 32, seed=3, start_step=45).take(5).as_numpy_iterator())
  for a, b in zip(full[45:], resumed):
    np.testing.assert_array_equal(a, b)
  # crosses an epoch boundary (1438 images / 32 per batch): still a permutation per epoch
  levels = np.floor(np.concatenate(full[:44])).astype(np.uint8)
  assert len(levels) == 1408 and np.all((full[0] >= 0) & (full[0] < 256))
  assert not np.array_equal(full[0], full[1])


def test_distribute_keeps_the_global_batch_for_any_replica_count():
  images = gdata.load_digits().train
  strategy = tf.distribute.get_strategy()
  ds = gdata.distribute(strategy, lambda: gdata.train_dataset(images, 8, 0), 8)
  first = next(iter(ds))
  np.testing.assert_array_equal(first, next(iter(gdata.train_dataset(images, 8, 0))))


def test_folder_of_images_is_cropped_resized_and_split(tmp_path):
  rng = np.random.RandomState(0)
  for i in range(10):
    size = (40 + i, 30)
    Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), np.uint8)).save(
        tmp_path / f"im{i}.png")
  (tmp_path / "notes.txt").write_text("not an image")
  d = gdata.load_folder(str(tmp_path), image_size=16)
  assert d.train.shape == (9, 16, 16, 3) and d.test.shape == (1, 16, 16, 3)
  with pytest.raises(ValueError, match=r"different sizes: 30x40x3 \(.*im0.png\); "
                                       r"30x41x3 \(.*im1.png\).*image_size"):
    gdata.load_folder(str(tmp_path), image_size=0)


def test_a_corrupt_image_or_archive_names_its_file(tmp_path):
  for i in range(3):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / f"im{i}.png")
  good = (tmp_path / "im1.png").read_bytes()
  (tmp_path / "im1.png").write_bytes(good[:len(good) // 2])  # truncated
  (tmp_path / "im2.png").write_bytes(b"not a png at all")
  with pytest.raises(ValueError, match=r"im1.png: not a readable image"):
    gdata.load_folder(str(tmp_path))
  (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 garbage")
  with pytest.raises(ValueError, match=r"bad.npz: not a readable .npz file"):
    gdata.load_arrays(str(tmp_path / "bad.npz"))
  np.savez(tmp_path / "mixed.npz", train=np.zeros((4, 8, 8, 1), np.uint8),
           test=np.zeros((2, 8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match=r"mixed.npz: train images are 8x8x1 but test images "
                                       r"are 8x8x3"):
    gdata.load_arrays(str(tmp_path / "mixed.npz"))


def test_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*config.data.path"):
    gdata.load_folder(str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="holds 0 images"):
    gdata.load_folder(str(tmp_path))


def test_nan_in_data_is_rejected_with_its_location(tmp_path):
  train = np.zeros((4, 2, 2, 1), np.float32)
  train[2, 1, 0, 0] = np.nan
  np.savez(tmp_path / "d.npz", train=train, test=np.zeros((1, 2, 2, 1)))
  with pytest.raises(ValueError, match=r"1 non-finite values \(NaN/Inf\), the first in image 2 at \(1, 0, 0\)"):
    gdata.load_arrays(str(tmp_path / "d.npz"))


@pytest.mark.parametrize("array,message", [
    (np.full((2, 2, 2, 1), 300), r"levels in \[0, 255\]; got \[300, 300\]"),
    (np.full((2, 2, 2, 1), 0.5), "whole levels"),
    (np.zeros((2, 2)), r"expected images \[N, H, W, C\]"),
    (np.full((2, 2, 2, 1), "a"), "expected integer levels or floats"),
])
def test_bad_arrays(array, message):
  with pytest.raises(ValueError, match=message):
    gdata.check_images(array, "x")


def test_offline_tfds_fails_fast_and_says_how_to_provide_it(tmp_path):
  start = time.time()
  with pytest.raises(gdata.DatasetUnavailableError,
                     match=r"not prepared.*cannot download.*tfds build cifar10 "
                           r"--data_dir=DIR.*--config.data.data_dir=DIR"):
    gdata.load_tfds("cifar10", data_dir=str(tmp_path), online=False)
  assert time.time() - start < 30


def test_offline_detection_does_not_hang(tmp_path):
  start = time.time()
  online = gdata.tfds_source._online(timeout=2.0)
  assert time.time() - start < 10
  if not online:
    with pytest.raises(gdata.DatasetUnavailableError):
      gdata.load_tfds("cifar10", data_dir=str(tmp_path))
