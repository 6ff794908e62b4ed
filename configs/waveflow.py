"""WaveFlow configs (Ping et al. 2020).

    gflow-train --config=configs/waveflow.py:ljspeech_64 --workdir=runs/waveflow_64
    gflow-info --config=configs/waveflow.py:ljspeech_64
    gflow-train --config=configs/waveflow.py:speech8k --workdir=runs/waveflow_8k \
        --config.data.path=/usr/share/asterisk/sounds/en

`ljspeech_64` is WaveFlow-64 (K = 8 flows, height 16, 64 residual channels: the
paper's 5.91 M parameters), `ljspeech_128` the 128-channel model; the height is
an override (`--config.model.height=8|16|32|64`). Training: Adam 2e-4, batch 8,
16,000-sample segments, log-mel features at 22,050 Hz (n_fft 1024, hop 256, 80
bands, 0–8 kHz). `speech8k` is a small model (K = 4, h = 8, 32 channels) for a folder of 8 kHz
speech (e.g. Debian's asterisk-core-sounds-en-wav, 25 minutes): hop 64
(upsampled 8 × 8), 40 bands, 500 steps of batch 8 × 4096 samples.
"""

import ml_collections

from gflow.choices import check_choice

ARGS = ("ljspeech_64", "ljspeech_128", "speech8k")


def get_config(arg="ljspeech_64"):
  if arg not in ARGS:
    check_choice(arg, ARGS, "waveflow config")
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "ljspeech"
  c.data.data_dir = ""          # tfds data_dir (prepared datasets when offline)
  c.data.path = ""              # name="wav_folder": a folder of .wav files
  c.data.sample_rate = 0        # wav_folder: the files' rate (0: read from the files)
  c.data.segment_length = 16000  # training segments, in samples
  c.data.shuffle_buffer = 2000
  c.data.features = "mel"
  c.data.mel = ml_collections.ConfigDict()
  c.data.mel.sample_rate = 22050
  c.data.mel.n_fft = 1024
  c.data.mel.hop = 256
  c.data.mel.n_mels = 80
  c.data.mel.fmin = 0.0
  c.data.mel.fmax = 8000.0

  c.model = ml_collections.ConfigDict()
  c.model.name = "waveflow"
  c.model.num_flows = 8
  c.model.height = 16
  c.model.channels = 64
  c.model.layers = 8
  c.model.weight_norm = True
  c.model.sigma = 1.0                       # σ of the Gaussian base during training
  c.model.upsample_strides = (16, 16)       # Π = the mel hop
  c.model.n_mels = c.data.mel.get_ref("n_mels")
  c.model.sample_rate = c.data.mel.get_ref("sample_rate")
  c.model.network_dtype = ""
  # NanoFlow's parameter sharing of the coupling networks (gflow.nets.sharing):
  c.model.sharing = "none"            # none | naive | decomp | nanoflow
  c.model.share_across = "level"      # WaveFlow has one level: the K flows form one group
  c.model.flow_embedding = "bias,gate"  # nanoflow: any of input, bias, gate
  c.model.flow_embedding_size = 512
  c.model.projection = "1x1"          # decomp/nanoflow per-flow head: "1x1" or "3x3"

  # Training in gradient-isolated parts (gflow.flows.parts); off while split is "".
  c.parts = ml_collections.ConfigDict()
  c.parts.split = ""                # "", "by_block" or "across_blocks"
  c.parts.boundaries = "1:4"       # one level: across_blocks after flow k ("1:4", "1:2,1:5")
  c.parts.schedule = "alternating"  # sequential | alternating | simultaneous
  c.parts.learning_rates = ""       # one per part, e.g. "1e-3,5e-4" ("": train.learning_rate)
  c.parts.steps_per_part = 0        # sequential: steps of each part (0: an equal share)
  c.parts.turn_steps = 0            # alternating: steps per turn (0: one epoch)
  c.parts.end_to_end_steps = 0      # then train end to end for this many steps
  c.parts.devices = ""              # one device per part, e.g. "/GPU:0,/GPU:1" ("": default)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 8
  c.train.num_steps = 2_000_000
  c.train.optimizer = "adam"
  c.train.learning_rate = 2e-4
  c.train.warmup_steps = 0
  c.train.decay_rate = 1.0
  c.train.decay_steps = 1
  c.train.grad_clip_norm = 0.0
  c.train.ema_decay = 0.0
  c.train.init_batch_size = 8
  c.train.jit_compile = True
  c.train.log_every = 100
  c.train.checkpoint_every = 5000
  c.train.eval_every = 50_000
  c.train.sample_every = 50_000
  c.train.keep_checkpoints = 3

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 1            # whole clips, one at a time
  c.eval.num_samples = 2           # clips resynthesised from the test mels
  c.eval.temperature = 1.0

  if arg == "ljspeech_128":
    c.model.channels = 128
  elif arg == "speech8k":
    c.data.name = "wav_folder"
    c.data.segment_length = 4096
    c.data.mel.update(dict(sample_rate=8000, n_fft=256, hop=64, n_mels=40, fmax=4000.0))
    c.model.update(dict(num_flows=4, height=8, channels=32, upsample_strides=(8, 8),
                        flow_embedding_size=64))
    c.train.batch_size = 8
    c.train.num_steps = 500       # about 11 minutes on 2 CPU cores
    c.train.learning_rate = 1e-3
    c.train.jit_compile = False   # on CPU XLA compiles for 2.5 min and then runs slower
    c.train.log_every, c.train.checkpoint_every = 50, 200
    c.train.eval_every = c.train.sample_every = 10_000  # once, at the end
  return c
