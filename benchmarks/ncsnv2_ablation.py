"""NCSNv2's five techniques, each turned off in turn, in one command: which ones matter
(the NeurIPS 2020 reviewers' question), on the digits.

Each row trains `configs/ncsnv2.py:digits` through `gflow-train` (a subprocess, as a
user runs it) with one technique reverted to NCSN's setting, and the others still
applying their rules (so L and ε are re-derived by `gflow.score.noise_levels` for
the row's σ₁, L and T), then runs `gflow-eval --fid --nearest_neighbours` on it:
FID and KID against the test split in the feature space of a classifier trained on
the digits, and the memorisation ratio (samples' distance to their nearest training
digit over held-out digits', on pixels). The DSM loss is not comparable across rows
(it depends on the schedule), so it is not the figure of merit.

    python benchmarks/ncsnv2_ablation.py                       # all rows, 3000 steps
    python benchmarks/ncsnv2_ablation.py --steps=1500 --fid_samples=500 --rows=all,no-4

Rows: `all` (the five techniques), `no-1` (σ₁ = 1), `no-2` (L = 10), `no-3`
(conditional InstanceNorm++ instead of dividing by σ), `no-4` (NCSN's sampler:
T = 100, ε = 2e-5), `no-5` (no EMA), `ncsn` (all five off). Each run's workdir is
kept under `--workdir` (default: a temporary directory).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

ROWS = ("all", "no-1", "no-2", "no-3", "no-4", "no-5", "ncsn")
# NCSN's settings (Song & Ermon 2019), each the "off" of one technique.
NCSN = {1: dict(sigma_1=1.0), 2: dict(num_scales=10), 3: dict(conditioning="conditional"),
        4: dict(steps=100, eps=2e-5), 5: dict(ema_decay=0.0)}


def settings(row, base):
  """The row's σ₁, L, conditioning, T, ε and EMA: NCSN's where its technique is off,
  else the technique's rule (L and ε re-derived for the row's values)."""
  from gflow.score import noise_levels
  off = set(range(1, 6)) if row == "ncsn" else {int(row[3:])} if row.startswith("no-") else set()
  s = dict(sigma_1=base.model.sigma_1, conditioning=base.model.conditioning,
           steps=base.model.sampling.steps, ema_decay=base.train.ema_decay)
  for t in off:
    s.update({k: v for k, v in NCSN[t].items() if k != "num_scales" and k != "eps"})
  sigma_l, dim = base.model.sigma_l, 8 * 8 * 1
  s["num_scales"] = NCSN[2]["num_scales"] if 2 in off else noise_levels.num_levels_for(
      s["sigma_1"], sigma_l, dim, base.model.overlap).value
  s["eps"] = NCSN[4]["eps"] if 4 in off else noise_levels.step_size_for(
      s["sigma_1"], sigma_l, s["num_scales"], s["steps"]).value
  return s


def overrides(s, steps, seed):
  return [f"model.sigma_1={s['sigma_1']}", f"model.num_scales={s['num_scales']}",
          f"model.conditioning={s['conditioning']}", f"model.sampling.steps={s['steps']}",
          f"model.sampling.eps={s['eps']}", f"train.ema_decay={s['ema_decay']}",
          f"train.num_steps={steps}", f"train.log_every={steps}", f"train.eval_every={steps}",
          f"train.sample_every={steps}", f"train.checkpoint_every={steps}", f"seed={seed}"]


def run(cmd):
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
  if proc.returncode:
    raise SystemExit(f"{' '.join(cmd)}\nfailed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc.stdout, time.perf_counter() - start


def figure(pattern, text, cmd):
  m = re.search(pattern, text, re.M)
  if not m:
    raise SystemExit(f"no {pattern!r} in the output of {' '.join(cmd)}:\n{text}")
  return float(m.group(1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=3000, help="training steps per run")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--fid_samples", type=int, default=1000)
  parser.add_argument("--set", action="append", default=[], help="extra field=value")
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  rows = args.rows.split(",")
  for r in rows:
    if r not in ROWS:
      raise SystemExit(f"unknown row {r!r}; rows: {', '.join(ROWS)}")
  seeds = [int(s) for s in args.seeds.split(",")]
  from tests.conftest import model_config
  base = model_config("ncsnv2", "digits")
  root = args.workdir or tempfile.mkdtemp(prefix="ncsnv2_ablation_")
  config = os.path.join(REPO, "configs", "ncsnv2.py") + ":digits"
  print(f"NCSNv2 ablation on the digits: {args.steps} steps, seeds {seeds}, FID/KID of "
        f"{args.fid_samples} samples against the test split (digits-classifier features, "
        f"final denoising step on); runs in {root}", flush=True)
  print(f"{'row':<5} {'sigma_1':>7} {'L':>3} {'cond':<11} {'T':>3} {'eps':>8} {'ema':>5} "
        f"{'FID':>8} {'KID':>8} {'NN ratio':>8} {'train s':>8} {'sample s':>8}", flush=True)
  for row in rows:
    s = settings(row, base)
    for seed in seeds:
      workdir = os.path.join(root, f"{row}_s{seed}")
      sets = overrides(s, args.steps, seed) + list(args.set)
      cmd = [sys.executable, "-m", "gflow.cli.train", f"--config={config}",
             f"--workdir={workdir}"] + [f"--config.{x}" for x in sets]
      _, train_seconds = run(cmd)
      cmd = [sys.executable, "-m", "gflow.cli.evaluate", f"--workdir={workdir}", "--fid",
             f"--fid_samples={args.fid_samples}", f"--seed={seed}", "--nearest_neighbours",
             "--num_samples=64", "--features=classifier"]
      out, _ = run(cmd)
      fid = figure(r"^FID: ([\d.]+)$", out, cmd)
      kid = figure(r"^KID: (-?[\d.]+)", out, cmd)
      ratio = figure(r"^samples / test: ([\d.]+)", out, cmd)
      sample_seconds = figure(r"^protocol: \d+ samples \(seed \d+, .*?, ([\d.]+) s\)", out, cmd)
      print(f"{row:<5} {s['sigma_1']:>7.4g} {s['num_scales']:>3} {s['conditioning']:<11} "
            f"{s['steps']:>3} {s['eps']:>8.2g} {s['ema_decay']:>5g} {fid:>8.3f} {kid:>8.4f} "
            f"{ratio:>8.3f} {train_seconds:>8.0f} {sample_seconds:>8.0f}", flush=True)


if __name__ == "__main__":
  main()
