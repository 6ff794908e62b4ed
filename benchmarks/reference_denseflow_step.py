"""The reference PyTorch DenseFlow's training step, sampling time and peak memory, for
side-by-side figures with `denseflow_step.py`.

Runs in its own Python environment with PyTorch (never imported by gflow) and a
checkout of the authors' code (github.com/matejgrcic/DenseFlow):

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    git clone https://github.com/matejgrcic/DenseFlow /tmp/denseflow_ref
    /tmp/torchenv/bin/python benchmarks/reference_denseflow_step.py \\
        --reference=/tmp/denseflow_ref --configs=74-10,45-6 --batches=8

Each cell (config, batch, `--checkpointing`) runs in its own process so its peak
resident memory (`ru_maxrss`) is its own. The step is the reference's training loop
(experiments/image/experiment/baseline_flow.py): zero_grad, `elbo_bpd` of a batch of
random 8-bit 32x32x3 images, backward, Adamax (lr 1e-3). The first step includes its
ActNorm's data-dependent init (the reference initialises on the first forward pass);
"1st step s" counts from the process's start (imports, build, first step). Then
`--iters` steps are timed (median). Sampling is the reference's eval_sample.py:
`model.eval()`, `model.sample(n)` under `torch.no_grad()`, timed after one warm-up.
"""

import argparse
import json
import os
import subprocess
import sys
import time

# --block_conf, --layers_conf, --growth_rate of the reference's README (74-10) and the
# paper's ablation model (45-6); --layer_mid_chnls 48 for every block in both.
CONFIGS = {"74-10": ([6, 4, 1], [5, 6, 20], 10), "45-6": ([5, 3, 1], [3, 5, 15], 6)}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--reference", required=True, help="checkout of matejgrcic/DenseFlow")
  p.add_argument("--configs", default="74-10,45-6")
  p.add_argument("--batches", default="8,64")
  p.add_argument("--checkpointing", default="off", help="off, on or off,on "
                 "(the reference's --checkpointing: torch.utils.checkpoint per dense layer)")
  p.add_argument("--iters", type=int, default=3)
  p.add_argument("--samples", type=int, default=128, help="0: skip sampling")
  p.add_argument("--cell", default="", help=argparse.SUPPRESS)  # config,batch,checkpointing
  return p.parse_args(argv)


def run_cell(args):
  launched = time.perf_counter()
  import resource

  sys.path[:0] = [args.reference, os.path.join(args.reference, "experiments", "image")]
  import torch
  from model.dense_flow import DenseFlow, parameter_count

  from denseflow.utils import elbo_bpd

  name, batch, checkpointing = args.cell.split(",")
  batch, checkpointing = int(batch), checkpointing == "on"
  blocks, layers, growth = CONFIGS[name]
  torch.manual_seed(0)
  t0 = time.perf_counter()
  model = DenseFlow(data_shape=(3, 32, 32), block_config=blocks, layers_config=layers,
                    layer_mid_chnls=[48] * len(blocks), growth_rate=growth,
                    checkpointing=checkpointing)
  opt = torch.optim.Adamax(model.parameters(), lr=1e-3)
  built = time.perf_counter() - t0
  x = torch.randint(0, 256, (batch, 3, 32, 32), generator=torch.Generator().manual_seed(0))

  def step():
    opt.zero_grad()
    loss = elbo_bpd(model, x)
    loss.backward()
    opt.step()
    return loss.item()

  model.train()
  t0 = time.perf_counter()
  step()
  first = time.perf_counter() - t0
  to_first_step = time.perf_counter() - launched
  times = []
  for _ in range(args.iters):
    t0 = time.perf_counter()
    loss = step()
    times.append(time.perf_counter() - t0)
  times.sort()
  out = dict(config=name, batch=batch, checkpointing=checkpointing,
             params=int(parameter_count(model)[0]), threads=torch.get_num_threads(),
             build_s=built, first_call_s=first, first_step_s=to_first_step,
             step_s=times[len(times) // 2], loss=loss)
  if args.samples:
    model.eval()
    with torch.no_grad():
      model.sample(args.samples)
      t0 = time.perf_counter()
      model.sample(args.samples)
      out["sample_s"] = time.perf_counter() - t0
  out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  print(json.dumps(out))


def main():
  args = parse_args()
  if args.cell:
    return run_cell(args)
  print(f"reference DenseFlow ({args.reference}), 32x32x3, random 8-bit images, "
        f"timed iters {args.iters} (median), samples {args.samples}", flush=True)
  print(f"{'config':7} {'batch':>5} {'ckpt':>5} {'params':>12} {'s/step':>8} {'img/s':>7} "
        f"{'build s':>8} {'1st call s':>10} {'1st step s':>10} {'samples/s':>9} {'peak GiB':>8}",
        flush=True)
  for name in args.configs.split(","):
    for batch in args.batches.split(","):
      for ckpt in args.checkpointing.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), f"--reference={args.reference}",
               f"--iters={args.iters}", f"--samples={args.samples}",
               f"--cell={name},{batch},{ckpt}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
          tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
          print(f"{name:7} {batch:>5} {ckpt:>5}  failed: {tail}", flush=True)
          continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rate = (f"{args.samples / r['sample_s']:9.2f}" if "sample_s" in r else f"{'-':>9}")
        print(f"{name:7} {r['batch']:>5} {ckpt:>5} {r['params']:>12,} {r['step_s']:8.2f} "
              f"{r['batch'] / r['step_s']:7.2f} {r['build_s']:8.1f} {r['first_call_s']:10.1f} "
              f"{r['first_step_s']:10.1f} {rate} {r['peak_gib']:8.2f}", flush=True)


if __name__ == "__main__":
  main()
