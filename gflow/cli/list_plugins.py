"""gflow-list: the plugins, models and bijectors gflow finds, with their distributions."""

from absl import flags

from gflow.cli import common

_BIJECTORS = flags.DEFINE_bool("bijectors", True, "Also list bijectors.")


def main(argv):
  common.reject_extra_args(argv)
  from gflow import registry
  plugins = registry.plugins()
  print("plugins:")
  for name, plugin in plugins.items():
    kind = "model" if plugin.build_model is not None else "library"
    print(f"  {name:<20} {kind:<8} {registry.distribution_of(name):<20} {plugin.description}")
  if _BIJECTORS.value:
    print("bijectors:")
    for name, (_, plugin, dist) in registry.bijectors().items():
      print(f"  {name:<28} plugin {plugin:<14} {dist}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
