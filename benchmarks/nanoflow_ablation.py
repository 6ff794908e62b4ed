"""NanoFlow's ablations in one command: parameter sharing none / naive / decomp / nanoflow,
the embedding candidates and the projection head, over seeds and numbers of flows.

Each row trains the model through `gflow-train` (a subprocess, as a user runs it)
for `--steps` steps with one seed, then reads its final test figure, times the
whole command, counts the parameters of the model the config builds (and, for
"bias" embeddings, NanoFlow's count with the embedding folded into per-flow
biases), and times sampling of the trained model in this process (`gflow.load`,
then `generate` once to trace and once timed). Rows are then averaged over
`--seeds` (mean ± standard deviation over seeds of the test figure). This is
what the NeurIPS 2020 reviewers asked for: the decomp baseline next to every
variant, several trials with their spread, the embedding and projection
choices, and scaling with the number of flows that share one network.

    python benchmarks/nanoflow_ablation.py                      # Glow on digits
    python benchmarks/nanoflow_ablation.py --model=denseflow --steps=200 --flows=2
    python benchmarks/nanoflow_ablation.py --model=waveflow \\
        --data_path=/usr/share/asterisk/sounds/en --steps=200 --flows=4,8

`--flows` sets the flows per group: Glow's steps per level, DenseFlow's modules
per unit, WaveFlow's number of flows. `--rows` lists the rows as
variant[:embedding=a+b][:projection=1x1|3x3]; the default covers every choice.
Extra `--config.*` style overrides go in `--set` (e.g. `--set=model.width=32`).
Each run's workdir is kept under `--workdir` (default: a temporary directory).
"""

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ("none,naive,decomp,nanoflow,nanoflow:embedding=input,nanoflow:embedding=bias,"
        "nanoflow:embedding=gate,decomp:projection=3x3,nanoflow:projection=3x3")
MODELS = {
    # config, what --flows sets, default overrides for a small budget
    "glow": ("glow.py:digits", "model.steps",
             ["model.levels=2", "model.width=32", "train.warmup_steps=20",
              "train.jit_compile=False"]),
    "denseflow": ("denseflow.py:digits", "model.modules",
                  ["train.warmup_steps=20"]),
    "waveflow": ("waveflow.py:speech8k", "model.num_flows",
                 ["model.channels=16", "model.layers=4", "model.flow_embedding_size=32",
                  "data.segment_length=2048",
                  "train.batch_size=4"]),
}


def parse_row(text):
  variant, *options = text.split(":")
  row = {"variant": variant, "embedding": None, "projection": "1x1"}
  for option in options:
    key, _, value = option.partition("=")
    if key not in ("embedding", "projection"):
      raise SystemExit(f"row {text!r}: unknown option {key!r} (embedding=…, projection=…)")
    row[key] = value.replace("+", ",")
  return row


def overrides(args, row, flows, seed):
  _, flows_field, defaults = MODELS[args.model]
  sets = list(defaults) + list(args.set)
  if args.model == "denseflow":
    value = f"({flows},{flows})"
  else:
    value = str(flows)
  sets += [f"{flows_field}={value}", f"model.sharing={row['variant']}",
           f"model.projection={row['projection']}", f"train.num_steps={args.steps}",
           f"train.log_every={args.steps}", f"train.eval_every={args.steps}",
           f"train.sample_every={args.steps}", f"train.checkpoint_every={args.steps}",
           f"seed={seed}"]
  if row["embedding"]:
    sets.append(f"model.flow_embedding={row['embedding']}")
  if args.data_path:
    sets.append(f"data.path={args.data_path}")
  return sets


def train(args, sets, workdir):
  cmd = [sys.executable, "-m", "gflow.cli.train",
         f"--config={os.path.join(REPO, 'configs', MODELS[args.model][0])}",
         f"--workdir={workdir}"] + [f"--config.{s}" for s in sets]
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"{' '.join(cmd)}\nfailed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  figure = re.findall(r"^test ([\w/ -]+): (-?[\d.]+)", proc.stdout, re.M)
  if not figure:
    raise SystemExit(f"no test figure in the output of {' '.join(cmd)}:\n{proc.stdout}")
  return figure[-1][0], float(figure[-1][1]), seconds


def inspect(workdir, n, model_name):
  """(parameters, NanoFlow's folded count, the embedding candidates, samples per second
  — images, or audio samples for WaveFlow — timed after a first, tracing call) of the
  trained model in `workdir`."""
  import numpy as np
  import tensorflow as tf

  import gflow
  from gflow.nets.sharing import folded_parameter_count, shared_networks
  model = gflow.load(workdir)
  count = sum(math.prod(v.shape) for v in model.trainable_variables)
  groups = shared_networks(model.layer)
  embedding = "+".join(groups[0].embedding) if groups and groups[0].embedding else "-"
  kwargs = {}
  if model_name == "waveflow":
    kwargs["conditioning"] = tf.constant(
        np.random.RandomState(0).randn(n, 32, model.n_mels) - 5.0, tf.float32)
  model.generate(n, seed=[0, 1], **kwargs)
  start = time.perf_counter()
  out = np.asarray(model.generate(n, seed=[0, 2], **kwargs))
  seconds = time.perf_counter() - start
  speed = (out.size if model_name == "waveflow" else n) / seconds
  return count, folded_parameter_count(model.layer), embedding, speed


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--model", choices=sorted(MODELS), default="glow")
  parser.add_argument("--steps", type=int, default=300, help="training steps per run")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--flows", default="4,8", help="flows per sharing group, comma-separated")
  parser.add_argument("--rows", default=ROWS)
  parser.add_argument("--samples", type=int, default=64, help="samples for the speed figure")
  parser.add_argument("--data_path", default="", help="data.path (WaveFlow: a WAV folder)")
  parser.add_argument("--set", action="append", default=[], help="extra field=value")
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  if args.model == "waveflow" and not args.data_path:
    raise SystemExit("WaveFlow trains on WAV files: pass --data_path (e.g. "
                     "/usr/share/asterisk/sounds/en after `apt-get install "
                     "asterisk-core-sounds-en-wav`).")
  seeds = [int(s) for s in args.seeds.split(",")]
  flows = [int(k) for k in args.flows.split(",")]
  rows = [parse_row(r) for r in args.rows.split(",")]
  root = args.workdir or tempfile.mkdtemp(prefix="nanoflow_ablation_")
  unit = "audio samples/s" if args.model == "waveflow" else "samples/s"
  print(f"NanoFlow ablation: {args.model} ({MODELS[args.model][0]}), {args.steps} steps, "
        f"seeds {seeds}, flows per group {flows}; runs in {root}", flush=True)
  header = (f"{'variant':<9} {'embedding':<15} {'proj':<4} {'K':>3} {'parameters':>11} "
            f"{'folded':>11} {'test figure (mean ± std)':>26} {'train s':>8} {unit:>16}")
  print(header, flush=True)
  for k in flows:
    for row in rows:
      figures, times, speeds = [], [], []
      for seed in seeds:
        sets = overrides(args, row, k, seed)
        workdir = os.path.join(root, f"{row['variant']}_{row['embedding'] or 'default'}_"
                               f"{row['projection']}_k{k}_s{seed}".replace(",", "+"))
        name, figure, seconds = train(args, sets, workdir)
        figures.append(figure)
        times.append(seconds)
        count, folded, embedding, speed = inspect(workdir, args.samples, args.model)
        speeds.append(speed)
      mean = sum(figures) / len(figures)
      spread = "n/a"  # one seed: no spread
      if len(figures) > 1:
        spread = f"{(sum((f - mean) ** 2 for f in figures) / (len(figures) - 1)) ** 0.5:.4f}"
      print(f"{row['variant']:<9} {embedding:<15} {row['projection']:<4} {k:>3} "
            f"{count:>11,} {folded:>11,} {f'{name} {mean:.4f} ± {spread}':>26} "
            f"{sum(times) / len(times):>8.1f} {sum(speeds) / len(speeds):>16,.0f}",
            flush=True)


if __name__ == "__main__":
  main()
