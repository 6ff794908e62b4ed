"""The workshop paper's Table 1 in one command: a flow trained end to end against the same
flow trained in gradient-isolated parts (split by block or across blocks, 2 or 3 parts,
alternating or sequential schedule), each followed by an end-to-end phase.

Every row is one `gflow-train` run (a subprocess, as a user runs it) of the same
model, data, seed and total number of steps; the parts rows spend the last
`--end_to_end_steps` of them end to end, as the paper's 60 + 30 epochs. Printed
per row: the final test bits/dim, the wall-clock time of the whole command, and
the seconds spent tracing and compiling (each phase is its own compiled step:
on short CPU runs that dominates the wall clock), and each part's (and the
end-to-end phase's) time per training step, from the progress lines (compile
time excluded; `--log_every` sets their spacing).

    python benchmarks/parts_table1.py                  # Glow, 3 levels x 8 steps, digits
    python benchmarks/parts_table1.py --steps=3000 --end_to_end_steps=1000
    python benchmarks/parts_table1.py --config=configs/glow.py:cifar10 --levels=3 \\
        --flow_steps=32 --steps=... --set=data.data_dir=...   # the paper's setting, online

The paper (CIFAR-10, Glow 3 x 32, 2 V100s): end to end 3.60 bpd in 1026 min,
across blocks with 2 parts 3.61 in 720 min, by block 3.62 in 735 min.
"""

import argparse
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rows(levels, flow_steps):
  """(label, parts.split, parts.boundaries) per split of Table 1, scaled to the model:
  across blocks cuts after 19/32 of level 1's steps (2 parts), or after 10/32 of level
  1 and 19/32 of level 2 (3 parts)."""
  a = max(1, round(flow_steps * 19 / 32))
  b = max(1, round(flow_steps * 10 / 32))
  out = [("end to end", "", ""), ("by block, 2 parts", "by_block", "1"),
         ("across blocks, 2 parts", "across_blocks", f"1:{a}")]
  if levels >= 2:
    out.append(("across blocks, 3 parts", "across_blocks", f"1:{b},2:{a}"))
  return out


def run(args, label, split, boundaries, schedule):
  sets = [f"model.levels={args.levels}", f"model.steps={args.flow_steps}",
          f"model.width={args.width}", f"train.num_steps={args.steps}",
          f"train.log_every={args.log_every}", f"train.eval_every={args.steps}",
          f"train.sample_every={args.steps}", f"train.checkpoint_every={args.steps}",
          f"seed={args.seed}"] + list(args.set)
  if split:
    sets += [f"parts.split={split}", f"parts.boundaries={boundaries}",
             f"parts.schedule={schedule}", f"parts.end_to_end_steps={args.end_to_end_steps}",
             f"parts.turn_steps={args.turn_steps}"]
  workdir = os.path.join(args.workdir, re.sub(r"\W+", "_", f"{label}_{schedule}"))
  cmd = [sys.executable, "-m", "gflow.cli.train", f"--config={args.config}",
         f"--workdir={workdir}"] + [f"--config.{s}" for s in sets]
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True)
  wall = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  bpd = float(re.findall(r"^test bits/dim: ([\d.]+)", proc.stdout, re.M)[-1])
  per_phase = {}  # phase → [steps/s of each progress line]
  phase = "end to end"
  for line in proc.stdout.splitlines():
    m = re.match(r"^Steps \d+–\d+: (.*) \(\w+\)\.$", line)
    if m:
      phase = m.group(1).replace(" simultaneously", "").split(" of ")[0]
      continue
    m = re.search(r"\| ([\d.]+) steps/s \|", line)
    if m and line.startswith("step"):
      per_phase.setdefault(phase, []).append(float(m.group(1)))
  times = {p: 1000.0 / (sum(v[1:] or v) / len(v[1:] or v)) for p, v in per_phase.items()}
  compile_s = sum(float(t) for t in re.findall(r"^First step.* took ([\d.]+) s\.$", proc.stdout,
                                                re.M))
  return bpd, wall, compile_s, times


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", default=os.path.join(REPO, "configs", "glow.py") + ":digits")
  parser.add_argument("--levels", type=int, default=3)
  parser.add_argument("--flow_steps", type=int, default=8, help="steps per level (K)")
  parser.add_argument("--width", type=int, default=32)
  parser.add_argument("--steps", type=int, default=600, help="training steps of every row")
  parser.add_argument("--end_to_end_steps", type=int, default=200)
  parser.add_argument("--turn_steps", type=int, default=50, help="alternating: steps per turn")
  parser.add_argument("--log_every", type=int, default=25)
  parser.add_argument("--schedules", default="alternating,sequential")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--set", action="append", default=[], help="extra field=value")
  parser.add_argument("--workdir", default="")
  args = parser.parse_args()
  import tempfile
  args.workdir = args.workdir or tempfile.mkdtemp(prefix="parts_table1_")
  print(f"Table 1: {args.config}, Glow {args.levels} levels x {args.flow_steps} steps, width "
        f"{args.width}; {args.steps} steps per row ({args.end_to_end_steps} end to end after "
        f"parts); runs in {args.workdir}", flush=True)
  print(f"{'approach':<24} {'schedule':<12} {'boundaries':<10} {'bits/dim':>8} "
        f"{'wall s':>7} {'compile s':>9}  ms/step per phase", flush=True)
  for label, split, boundaries in rows(args.levels, args.flow_steps):
    for schedule in (args.schedules.split(",") if split else ["-"]):
      bpd, wall, compile_s, times = run(args, label, split, boundaries, schedule)
      phases = ", ".join(f"{p} {t:.0f}" for p, t in times.items())
      print(f"{label:<24} {schedule:<12} {boundaries or '-':<10} {bpd:>8.4f} {wall:>7.1f}  "
            f"{compile_s:>9.1f}  {phases}", flush=True)


if __name__ == "__main__":
  main()
