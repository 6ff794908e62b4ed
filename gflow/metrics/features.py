"""Feature networks for FID, KID and nearest neighbours: InceptionV3 (online), or a
classifier trained on the dataset itself (offline; figures comparable only among
themselves)."""

import numpy as np
import tensorflow as tf

__all__ = ["inception_features", "DigitsClassifier", "feature_network"]


def inception_features(batch_size=100):
  """A function uint8 images [N, H, W, C] → InceptionV3 pool features [N, 2048]
  (ImageNet weights; images resized to 299x299, grey repeated to RGB). The weights
  come from Keras' download; offline, the error says where to put them."""
  import keras
  try:
    net = keras.applications.InceptionV3(include_top=False, pooling="avg", weights="imagenet",
                                         input_shape=(299, 299, 3))
  except Exception as e:  # noqa: BLE001 - the download's own error is appended
    raise RuntimeError(
        "InceptionV3's ImageNet weights could not be loaded (offline?). Put "
        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 in ~/.keras/models/ "
        "(from a machine with internet: keras.applications.InceptionV3(weights='imagenet', "
        f"include_top=False)), or use --features=classifier. ({type(e).__name__}: {e})"
    ) from e

  def features(images):
    out = []
    for start in range(0, len(images), batch_size):
      x = tf.cast(images[start:start + batch_size], tf.float32)
      if x.shape[-1] == 1:
        x = tf.repeat(x, 3, axis=-1)
      x = tf.image.resize(x, (299, 299))
      out.append(net(keras.applications.inception_v3.preprocess_input(x)).numpy())
    return np.concatenate(out)
  return features


class DigitsClassifier:
  """A small CNN trained on the digits' own labels; its 64-unit penultimate layer is the
  feature space. Training is seeded (same features on every call with the same seed)
  and takes seconds on a CPU; `accuracy` is its test accuracy."""

  def __init__(self, seed=0, epochs=30):
    import keras

    from gflow.data import load_digits
    from gflow.data.digits import digit_labels
    keras.utils.set_random_seed(seed)
    data = load_digits(256)
    train_y, test_y = digit_labels()
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
    feats = keras.layers.Dense(64, activation="relu", name="features")(h)
    logits = keras.layers.Dense(10)(feats)
    model = keras.Model(inputs, logits)
    x = tf.constant(data.train, tf.float32) / 255
    y = tf.constant(train_y, tf.int32)
    opt = keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    batch = 64

    @tf.function
    def epoch(order):  # one pass over the training digits in this order, in one call
      for start in tf.range(0, tf.shape(order)[0], batch):
        idx = order[start:start + batch]
        with tf.GradientTape() as tape:
          loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
              tf.gather(y, idx), model(tf.gather(x, idx), training=True)))
        opt.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    rng = np.random.RandomState(seed)
    for _ in range(epochs):
      epoch(tf.constant(rng.permutation(len(data.train)), tf.int32))
    logits = model(tf.constant(data.test, tf.float32) / 255)
    self.accuracy = float(np.mean(np.argmax(logits, -1) == test_y))
    self._features = keras.Model(inputs, feats)

  def __call__(self, images, batch_size=512):
    images = np.asarray(images)
    return np.concatenate([
        self._features(tf.constant(images[i:i + batch_size], tf.float32) / 255).numpy()
        for i in range(0, len(images), batch_size)])


def feature_network(name, data_name, seed=0):
  """(features function, description) for `name` "inception" or "classifier" (a classifier
  trained on the data: the digits have one)."""
  if name == "inception":
    return inception_features(), "InceptionV3 pool3 (ImageNet weights), 2048 features"
  if name == "classifier":
    if data_name != "digits":
      raise ValueError(f"--features=classifier has a classifier for the digits only; "
                       f"{data_name!r} needs --features=inception (online).")
    net = DigitsClassifier(seed)
    return net, (f"a CNN classifier trained on the digits' training labels (test accuracy "
                 f"{net.accuracy:.3f}), 64 features, seed {seed}")
  from gflow.choices import check_choice
  check_choice(name, ("inception", "classifier"), "feature network (--features)")
