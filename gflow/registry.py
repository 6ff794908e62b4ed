"""Plugins found through `importlib.metadata` entry points (group `gflow.plugins`).

Discovery is lazy: listing reads entry-point metadata only; a plugin's module
is imported when it is asked for by name, or when every plugin is needed
(`plugins()`, `bijectors()`). Built-in models register through the same entry
points as anyone else's. Set GFLOW_DISABLE_PLUGIN_AUTOLOAD=1 to load only the
plugins of the `gflow` distribution itself (others can still be added with
`register`). See `gflow.plugin` for what a plugin provides.
"""

import dataclasses
import difflib
import importlib.metadata
import os

from gflow.plugin import Plugin

__all__ = [
    "GROUP", "PluginError", "available", "bijectors", "data_sources", "get", "get_model_builder",
    "plugins", "register", "reset",
]

GROUP = "gflow.plugins"
DISABLE_ENV = "GFLOW_DISABLE_PLUGIN_AUTOLOAD"
CORE_DISTRIBUTION = "gflow"


class PluginError(LookupError):
  """An unknown or conflicting plugin, model or bijector name."""


@dataclasses.dataclass
class _Entry:
  name: str
  distribution: str
  entry_point: object = None
  plugin: Plugin = None

  def load(self):
    if self.plugin is None:
      obj = self.entry_point.load()
      if not isinstance(obj, Plugin):
        raise PluginError(
            f"Entry point {self.name!r} of {self.distribution} ({self.entry_point.value}) "
            f"is a {type(obj).__name__}, not a gflow.Plugin.")
      if obj.name != self.name:
        raise PluginError(
            f"Entry point {self.name!r} of {self.distribution} loads a plugin named "
            f"{obj.name!r}; the two names must agree.")
      self.plugin = obj
    return self.plugin


_entries = None  # name -> _Entry


def _dist_name(ep):
  dist = getattr(ep, "dist", None)
  return dist.metadata["Name"] if dist is not None else "<unknown distribution>"


def _discover():
  global _entries
  if _entries is not None:
    return _entries
  entries = {}
  autoload = os.environ.get(DISABLE_ENV, "") in ("", "0")
  for ep in importlib.metadata.entry_points(group=GROUP):
    dist = _dist_name(ep)
    if not autoload and dist != CORE_DISTRIBUTION:
      continue
    if ep.name in entries:
      raise PluginError(
          f"Two distributions register the gflow plugin {ep.name!r}: "
          f"{entries[ep.name].distribution} and {dist}. Uninstall one.")
    entries[ep.name] = _Entry(ep.name, dist, ep)
  _entries = entries
  return entries


def reset():
  """Forget what was discovered (re-read entry points on next use)."""
  global _entries
  _entries = None


def register(plugin, distribution="<registered in code>"):
  """Adds a plugin by hand (e.g. with autoloading off)."""
  entries = _discover()
  if plugin.name in entries:
    raise PluginError(f"Plugin {plugin.name!r} is already registered by "
                      f"{entries[plugin.name].distribution}; {distribution} registers it too.")
  entries[plugin.name] = _Entry(plugin.name, distribution, plugin=plugin)


def available():
  """name → distribution, without importing any plugin."""
  return {name: e.distribution for name, e in sorted(_discover().items())}


def _unknown(kind, name, known):
  near = difflib.get_close_matches(name, known, n=1)
  hint = f" Did you mean {near[0]!r}?" if near else ""
  return PluginError(f"Unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known)) or 'none'}.")


def get(name):
  """The plugin called `name` (imports only that plugin)."""
  entries = _discover()
  if name not in entries:
    raise _unknown("plugin", name, list(entries))
  return entries[name].load()


def distribution_of(name):
  return _discover()[name].distribution


def models():
  """Names of plugins that provide a model (imports every plugin)."""
  return sorted(n for n, p in plugins().items() if p.build_model is not None)


def get_model_builder(name):
  """`build_model` of the plugin called `name`; a clear error if there is none."""
  entries = _discover()
  if name not in entries:
    raise _unknown("model", name, models())
  plugin = entries[name].load()
  if plugin.build_model is None:
    raise PluginError(f"Plugin {name!r} ({entries[name].distribution}) provides no "
                      f"model; models: {', '.join(models())}.")
  return plugin.build_model


def plugins():
  """name → Plugin for every plugin (imports them all)."""
  return {name: e.load() for name, e in sorted(_discover().items())}


def data_sources():
  """data source name → factory(data_config) over every plugin (imports them all)."""
  out, owner = {}, {}
  for name, entry in sorted(_discover().items()):
    for sname, factory in entry.load().data_sources.items():
      if sname in out:
        raise PluginError(f"Data source {sname!r} is registered twice: by plugin "
                          f"{owner[sname]!r} and by plugin {name!r} ({entry.distribution}).")
      out[sname], owner[sname] = factory, name
  return out


def bijectors():
  """bijector name → (factory, plugin name, distribution) over every plugin."""
  out = {}
  for name, entry in sorted(_discover().items()):
    for bname, factory in entry.load().bijectors.items():
      if bname in out:
        raise PluginError(
            f"Bijector {bname!r} is registered twice: by plugin {out[bname][1]!r} "
            f"({out[bname][2]}) and by plugin {name!r} ({entry.distribution}).")
      out[bname] = (factory, name, entry.distribution)
  return out
