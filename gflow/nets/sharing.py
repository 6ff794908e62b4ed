"""NanoFlow's parameter sharing (Lee, Kim & Yoon 2020) around any coupling-network factory.

K flows of a model usually own K copies of their coupling network. Here a group
of flows shares one network and keeps only small per-flow parts:

* `naive`: one whole network (body and head) serves every flow of the group;
* `decomp`: a shared body, and per flow a zero-initialised projection head
  (`projection`: "1x1", a fully connected map of the channels at each position
  as in the paper's code, or "3x3", a spatial convolution like Glow's own head);
* `nanoflow`: decomp, plus a learned per-flow embedding e_k of size
  `embedding_size` that tells the shared body which flow it serves, in any
  combination of the three candidates of the paper (`embedding`):
  "input" (e_k concatenated to the body's input at every position), "bias"
  (a projection P_j e_k added to hidden layer j's pre-activation; P_j is shared)
  and "gate" (a per-flow per-channel gate, initialised to one, on hidden layer
  j's output). NanoFlow's audio code uses bias + gate, its image code input +
  gate.

The network factory is the one a coupling layer takes, `network_fn(out_channels)`;
for decomp and nanoflow the network class must also accept `head=False` and
provide `features(x, conditioning, modulation, training)`, `feature_channels`
and `modulation_widths` (GlowCNN, WaveNet2D and DenseFlowCouplingNet do).
Flows of one group may differ in input width (Glow's levels, DenseFlow's
growing units): the shared body is built for the widest input and narrower
inputs are padded with zero channels; naive heads give the widest output and
each flow takes its leading channels.

Usage: `factory = sharing_factory(network_fn, "nanoflow", ...)` gives the
factory of one group (pass it to every coupling layer of the group); after the
model's layer is built, `build_shared_networks(layer)` builds each group's body
for the widest member (`gflow.Flow`, `gflow.AugmentedFlow` and WaveFlow call it).
"""

import math

import keras
import tensorflow as tf

from gflow.choices import check_choice
from gflow.nets.modulation import Modulation
from gflow.nets.zero_conv import ZeroConv2D

__all__ = ["VARIANTS", "EMBEDDINGS", "PROJECTIONS", "SharedNetwork", "SharedFlowNetwork",
           "SharingGroups", "sharing_factory", "parse_embedding", "build_shared_networks",
           "shared_networks", "folded_parameter_count", "SCOPES"]

VARIANTS = ("none", "naive", "decomp", "nanoflow")
EMBEDDINGS = ("input", "bias", "gate")
PROJECTIONS = ("1x1", "3x3")


def parse_embedding(spec):
  """("bias", "gate") from "bias,gate" (a config string) or a sequence; checked."""
  parts = spec.split(",") if isinstance(spec, str) else list(spec)
  parts = tuple(p.strip() for p in parts if p.strip())
  if not parts:
    raise ValueError(f"NanoFlow needs at least one embedding candidate of {EMBEDDINGS}; "
                     f"got {spec!r}.")
  for p in parts:
    if p not in EMBEDDINGS:
      check_choice(p, EMBEDDINGS, "embedding candidate (sharing.embedding)")
  return tuple(sorted(set(parts), key=EMBEDDINGS.index))


def sharing_factory(network_fn, variant="none", embedding=("bias", "gate"),
                    embedding_size=16, projection="1x1", name="shared"):
  """The coupling-network factory f(out_channels) for one group of flows: `network_fn`
  itself for "none" (every flow owns its network), else the member factory of a new
  `SharedNetwork`."""
  if variant not in VARIANTS:
    check_choice(variant, VARIANTS, "parameter sharing (sharing.variant)")
  if variant == "none":
    return network_fn
  return SharedNetwork(network_fn, variant, embedding, embedding_size, projection,
                       name=name).member


class SharedNetwork(keras.layers.Layer):
  """The parts a group of flows shares: the network (naive) or its body (decomp,
  nanoflow), and for "bias" embeddings the per-layer projections P_j.

  `member(out_channels)` makes the network of one flow of the group (a
  `SharedFlowNetwork`). Members register their input width when built;
  `build_shared()` then builds the shared parts for the widest.
  """

  def __init__(self, network_fn, variant="nanoflow", embedding=("bias", "gate"),
               embedding_size=16, projection="1x1", **kwargs):
    super().__init__(**kwargs)
    if variant not in VARIANTS[1:]:
      check_choice(variant, VARIANTS[1:], "shared variant")
    if projection not in PROJECTIONS:
      check_choice(projection, PROJECTIONS, "projection (sharing.projection)")
    self.network_fn = network_fn
    self.variant = variant
    self.embedding = parse_embedding(embedding) if variant == "nanoflow" else ()
    if self.embedding and (not isinstance(embedding_size, int) or embedding_size < 1):
      raise ValueError(f"embedding_size must be a positive int; got {embedding_size!r}.")
    self.embedding_size = embedding_size if self.embedding else 0
    self.projection = projection
    self._shapes = []       # input shapes of the members, in the order they were built
    self._out_channels = []
    self.network = None     # naive: built in build_shared, once the widest output is known
    self.embedding_projections = []
    if variant != "naive":
      self.network = network_fn(1, head=False)
      for attr in ("features", "feature_channels", "modulation_widths"):
        if not hasattr(self.network, attr):
          raise TypeError(f"{type(self.network).__name__} cannot share its body: it lacks "
                          f"`{attr}` (see gflow.nets.sharing).")
      if projection == "3x3" and getattr(self.network, "causal_height", False):
        raise ValueError(f"{type(self.network).__name__} is causal along the height: its "
                         "projection head must be 1x1, not 3x3.")
      if "bias" in self.embedding:
        policy = self.network.dtype_policy
        self.embedding_projections = [
            keras.layers.Dense(w, dtype=policy, name=f"embedding_projection_{j}")
            for j, w in enumerate(self.network.modulation_widths["bias"])]

  @property
  def num_members(self):
    return len(self._shapes)

  def member(self, out_channels, name=None):
    """The network of one more flow of the group, mapping to `out_channels`."""
    return SharedFlowNetwork(self, out_channels, name=name)

  def register(self, input_shape, out_channels):
    if self.built:
      raise ValueError(f"{self.name} is already built for inputs of "
                       f"{self.input_channels} channels; build every flow of the group "
                       "before build_shared_networks().")
    self._shapes.append(tuple(input_shape))
    self._out_channels.append(out_channels)

  @property
  def input_channels(self):
    """The widest member input (members are padded to it), before any embedding."""
    return max(s[-1] for s in self._shapes)

  def build_shared(self):
    if self.built:
      return
    if not self._shapes:
      raise ValueError(f"{self.name} has no member: build the flows that share it first.")
    shape = self._shapes[0][:-1] + (self.input_channels
                                     + (self.embedding_size if "input" in self.embedding
                                        else 0),)
    if self.variant == "naive":
      self.network = self.network_fn(max(self._out_channels))
    self.network.build(shape)
    for proj in self.embedding_projections:
      proj.build((self.embedding_size,))
    self.built = True

  def build(self, input_shape):
    self.build_shared()

  def call(self, x):
    raise TypeError(f"{self.name} is used through its members' networks.")

  def folded_parameter_count(self):
    """Parameters per flow once the embedding is folded: a "bias" embedding becomes a
    per-flow bias of every point (NanoFlow's inference form: P_j and e_k dropped)."""
    if "bias" not in self.embedding:
      return 0
    return sum(self.network.modulation_widths["bias"])


class SharedFlowNetwork(keras.layers.Layer):
  """One flow's network in a sharing group: out = head_k(body(pad(x) [‖ e_k], modulation_k)).

  For naive, out = the shared network's leading `out_channels` channels of
  pad(x). Holds this flow's parts only: its projection head (decomp,
  nanoflow), its embedding e_k and gates (nanoflow). Called like the network
  it stands for, with `conditioning` and `training`; for WaveNet2D bodies it
  also offers the row-by-row synthesis methods.
  """

  def __init__(self, shared, out_channels, **kwargs):
    super().__init__(**kwargs)
    if out_channels < 1:
      raise ValueError(f"out_channels must be >= 1; got {out_channels}.")
    self.shared = shared
    self.out_channels = out_channels
    self.head = None
    self.gates = []

  def build(self, input_shape):
    s = self.shared
    s.register(input_shape, self.out_channels)
    if s.variant == "naive":
      return
    body = s.network
    policy = body.dtype_policy
    kernel = 1 if s.projection == "1x1" else 3
    self.head = ZeroConv2D(self.out_channels, kernel, dtype=policy, name="head")
    self.head.build(tuple(input_shape[:-1]) + (body.feature_channels,))
    if s.embedding:
      self.flow_embedding = self.add_weight(
          name="embedding", shape=(s.embedding_size,),
          initializer=keras.initializers.RandomNormal(stddev=1.0))
    if "gate" in s.embedding:
      self.gates = [self.add_weight(name=f"gate_{j}", shape=(w,), initializer="ones")
                    for j, w in enumerate(body.modulation_widths["gate"])]

  def _check_built(self):
    if not self.shared.built:
      raise ValueError(f"The shared network of {self.name} is not built: call "
                       "gflow.nets.sharing.build_shared_networks(layer) after building the "
                       "model's layer.")

  def _input(self, x):
    """x padded with zero channels to the group's width, then e_k appended if "input"."""
    s = self.shared
    pad = s.input_channels - x.shape[-1]
    if pad < 0:
      raise ValueError(f"{self.name} was built for {s.input_channels} input channels at "
                       f"most; got shape {x.shape}.")
    parts = [x]
    if pad:
      parts.append(tf.zeros(tf.concat([tf.shape(x)[:-1], [pad]], 0), x.dtype))
    if "input" in s.embedding:
      e = tf.cast(self.flow_embedding, x.dtype)
      parts.append(tf.broadcast_to(e, tf.concat([tf.shape(x)[:-1], [s.embedding_size]], 0)))
    return tf.concat(parts, -1) if len(parts) > 1 else x

  def modulation(self):
    """This flow's `Modulation` of the shared body (None when it has none)."""
    s = self.shared
    biases = gates = None
    if "bias" in s.embedding:
      e = tf.convert_to_tensor(self.flow_embedding)[None]
      biases = [proj(e)[0] for proj in s.embedding_projections]
    if "gate" in s.embedding:
      gates = [tf.convert_to_tensor(g) for g in self.gates]
    if biases is None and gates is None:
      return None
    return Modulation(biases, gates)

  def call(self, x, conditioning=None, training=None):
    self._check_built()
    s = self.shared
    kwargs = {} if conditioning is None else {"conditioning": conditioning}
    x = self._input(x)
    if s.variant == "naive":
      return s.network(x, training=training, **kwargs)[..., :self.out_channels]
    features = s.network.features(x, modulation=self.modulation(), training=training,
                                  **kwargs)
    return self.head(features)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (self.out_channels,)

  # -- row-by-row synthesis (WaveFlow), when the shared network offers it -----------------
  def _body_with(self, method):
    self._check_built()
    network = self.shared.network
    if not hasattr(network, method):
      raise TypeError(f"{type(network).__name__} has no row-by-row synthesis ({method}).")
    return network

  def synthesis_weights(self):
    network = self._body_with("synthesis_weights")
    return {"network": network.synthesis_weights(), "modulation": self.modulation()}

  def synthesis_buffers(self, batch, width, dtype=tf.float32):
    return self._body_with("synthesis_buffers").synthesis_buffers(batch, width, dtype)

  def row_step(self, x_row, cond_row, buffers, weights):
    """The network's `row_step` for this flow: the output row and the updated buffers."""
    s = self.shared
    x_row = self._input(x_row)
    if s.variant == "naive":
      out, buffers = self._body_with("row_step").row_step(x_row, cond_row, buffers,
                                                          weights["network"])
      return out[..., :self.out_channels], buffers
    features, buffers = self._body_with("row_step_features").row_step_features(
        x_row, cond_row, buffers, weights["network"], weights["modulation"])
    return self.head(features), buffers


def shared_networks(layer):
  """Every `SharedNetwork` in a Keras layer tree, each once."""
  return [l for l in layer._flatten_layers(include_self=True, recursive=True)
          if isinstance(l, SharedNetwork)]


def folded_parameter_count(layer):
  """Trainable parameters of `layer` with every "bias" embedding folded into per-flow
  biases: e_k and the projections P_j replaced by the biases P_j e_k of each flow, as
  NanoFlow's README counts its models (for synthesis the biases are computed once)."""
  total = sum(int(math.prod(v.shape)) for v in layer.trainable_weights)
  for group in shared_networks(layer):
    if "bias" not in group.embedding:
      continue
    total -= sum(int(math.prod(v.shape)) for p in group.embedding_projections
                 for v in p.trainable_weights)
    if "input" not in group.embedding:  # e_k is still needed at the input
      total -= group.num_members * group.embedding_size
    total += group.num_members * group.folded_parameter_count()
  return total


def build_shared_networks(layer):
  """Builds the shared parts of every sharing group in `layer` (after `layer.build`)."""
  for shared in shared_networks(layer):
    shared.build_shared()


SCOPES = ("model", "level")


class SharingGroups:
  """The coupling-network factories of one model's sharing groups, from its config.

  `groups(level)` is the factory for the flows of `level` (a multi-scale level
  or block): with `across="level"` each level has its own group (NanoFlow's
  image code), with `across="model"` every flow of the model shares one.
  With `variant="none"` it is `network_fn` everywhere.

  Config fields (model config; absent = no sharing): `sharing` (none | naive |
  decomp | nanoflow), `share_across` (level | model), `flow_embedding` (e.g.
  "bias,gate"), `flow_embedding_size`, `projection` (1x1 | 3x3).
  """

  def __init__(self, network_fn, variant="none", across="level", embedding=("bias", "gate"),
               embedding_size=16, projection="1x1"):
    if variant not in VARIANTS:
      check_choice(variant, VARIANTS, "parameter sharing (model.sharing)")
    if across not in SCOPES:
      check_choice(across, SCOPES, "sharing scope (model.share_across)")
    if projection not in PROJECTIONS:
      check_choice(projection, PROJECTIONS, "projection (model.projection)")
    self.network_fn, self.variant, self.across = network_fn, variant, across
    self.embedding = parse_embedding(embedding) if variant == "nanoflow" else ()
    self.embedding_size, self.projection = embedding_size, projection
    self._factories = {}

  @classmethod
  def from_config(cls, network_fn, model_config, default_embedding=("bias", "gate")):
    c = model_config
    return cls(network_fn, c.get("sharing", "none"), c.get("share_across", "level"),
               c.get("flow_embedding", None) or default_embedding,
               c.get("flow_embedding_size", 16), c.get("projection", "1x1"))

  def __call__(self, level=0):
    if self.variant == "none":
      return self.network_fn
    key = 0 if self.across == "model" else level
    if key not in self._factories:
      name = "shared" if self.across == "model" else f"shared_{level}"
      self._factories[key] = sharing_factory(self.network_fn, self.variant, self.embedding,
                                             self.embedding_size, self.projection, name=name)
    return self._factories[key]
