"""What may change when a run resumes: the config in the command against the workdir's.

A resumed run must be the run its checkpoints come from. Fields that define the
model or its data (`model.*`, `data.*`, `seed`) must not change: a new value would
either fail to restore or, worse, continue silently on other data. Fields that
only say how long and how visibly to train (`train.*`, `eval.*`,
`data.data_dir`: where the same prepared data lives) may change; they are
reported. The comparison runs before anything in the workdir is written.
"""

import json

__all__ = ["ConfigChanged", "compare", "flatten"]

ALLOWED = ("train.", "eval.", "data.data_dir")
# The value a field had in effect in a config saved before the field existed (the model
# builders read it with this default, so such a run resumes only with this value).
ABSENT = {"model.stack_modules": False}


class ConfigChanged(ValueError):
  """The new config changes the model or data of the run being resumed."""


def flatten(tree, prefix=""):
  """{"a.b.c": value} of a nested dict (lists and tuples compare as lists)."""
  out = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(flatten(v, key + "."))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def _allowed(field):
  return any(field == a or (a.endswith(".") and field.startswith(a)) for a in ALLOWED)


def compare(saved, config, workdir):
  """The allowed changes of `config` (a ConfigDict) from `saved` (the workdir's
  config.json, a dict) as lines `field: old → new`; ConfigChanged naming every field
  that may not change."""
  new = flatten(json.loads(config.to_json_best_effort(sort_keys=True)))
  old = flatten(saved)
  old.update({f: v for f, v in ABSENT.items() if f not in old and f in new})
  missing = object()
  changed = [(f, old.get(f, missing), new.get(f, missing)) for f in sorted(set(old) | set(new))
             if old.get(f, missing) != new.get(f, missing)]
  show = lambda v: "(unset)" if v is missing else json.dumps(v)  # noqa: E731
  refused = [f"{f}: {show(a)} → {show(b)}" for f, a, b in changed if not _allowed(f)]
  if refused:
    raise ConfigChanged(
        f"{workdir} holds a run whose model or data differ from this config "
        f"({'; '.join(refused)}). Its checkpoints cannot continue with these; use the "
        "same values, or a new --workdir (or --finetune_from to start from its weights).")
  return [f"{f}: {show(a)} → {show(b)}" for f, a, b in changed]
