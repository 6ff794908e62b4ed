"""Which parts of a flow train at each step: sequential, alternating or simultaneous,
then an optional end-to-end phase (training flows in parts, `gflow.flows.parts`)."""

import dataclasses

from gflow.choices import check_choice

__all__ = ["PartsSchedule", "SCHEDULES", "Phase"]

SCHEDULES = ("sequential", "alternating", "simultaneous")


@dataclasses.dataclass(frozen=True)
class Phase:
  """`end_to_end` (the whole model on its own objective) or the parts in `active`
  (0-based) on their local objectives."""
  end_to_end: bool
  active: tuple

  def describe(self, num_parts):
    if self.end_to_end:
      return "end to end"
    if len(self.active) == num_parts and num_parts > 1:
      return f"parts {', '.join(str(k + 1) for k in self.active)} simultaneously"
    return f"part {self.active[0] + 1} of {num_parts}"


class PartsSchedule:
  """A pure function of the (1-based) step, so a resumed run continues where it was.

  Of `num_steps`, the last `end_to_end_steps` train end to end; before them:
  * sequential: part 1 for `steps_per_part` steps, then part 2, … (default: an
    equal share of the steps before the end-to-end phase);
  * alternating: the parts take turns of `turn_steps` steps (default one epoch),
    1, 2, …, P, 1, 2, …, each starting from the weights the previous turn left;
  * simultaneous: every part on its own local loss in every step.
  """

  def __init__(self, kind, num_parts, num_steps, end_to_end_steps=0, steps_per_part=0,
               turn_steps=0, steps_per_epoch=1):
    if kind not in SCHEDULES:
      check_choice(kind, SCHEDULES, "parts schedule (parts.schedule)")
    if not 0 <= end_to_end_steps < num_steps:
      raise ValueError(f"parts.end_to_end_steps must be in [0, train.num_steps = "
                       f"{num_steps}); got {end_to_end_steps}.")
    self.kind, self.num_parts, self.num_steps = kind, num_parts, num_steps
    self.parts_steps = num_steps - end_to_end_steps
    self.steps_per_part = steps_per_part or max(self.parts_steps // num_parts, 1)
    self.turn_steps = turn_steps or max(steps_per_epoch, 1)
    if kind == "sequential" and self.steps_per_part * num_parts > self.parts_steps:
      raise ValueError(
          f"sequential training of {num_parts} parts for {self.steps_per_part} steps each "
          f"needs {self.steps_per_part * num_parts} steps before the end-to-end phase; "
          f"train.num_steps − parts.end_to_end_steps is {self.parts_steps}.")

  def at(self, step):
    """The phase of 1-based `step`."""
    if step > self.parts_steps:
      return Phase(True, tuple(range(self.num_parts)))
    if self.kind == "simultaneous":
      return Phase(False, tuple(range(self.num_parts)))
    if self.kind == "sequential":
      return Phase(False, (min((step - 1) // self.steps_per_part, self.num_parts - 1),))
    return Phase(False, (((step - 1) // self.turn_steps) % self.num_parts,))

  def segments(self, first=1, last=None):
    """[(first step, last step, Phase), …] of consecutive steps in one phase."""
    last = self.num_steps if last is None else last
    out = []
    for step in range(first, last + 1):
      phase = self.at(step)
      if out and out[-1][2] == phase:
        out[-1] = (out[-1][0], step, phase)
      else:
        out.append((step, step, phase))
    return out
