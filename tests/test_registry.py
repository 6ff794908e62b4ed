"""Plugin discovery through real entry points, and the contract over every bijector."""

import importlib
import os
import sys

import pytest

from gflow import registry, testing
from tests.conftest import CONFIG, REPO, TINY, run_cli

PLUGIN_SITE = os.path.join(REPO, "tests", "testdata", "plugin_site")


@pytest.fixture
def plugin_on_path():
  """Puts the test-only distribution on sys.path; discovery then finds it."""
  sys.path.insert(0, PLUGIN_SITE)
  importlib.invalidate_caches()
  registry.reset()
  yield
  sys.path.remove(PLUGIN_SITE)
  sys.modules.pop("gflow_testplugin", None)
  importlib.invalidate_caches()
  registry.reset()


def test_builtins_register_through_entry_points():
  found = registry.available()
  assert found["glow"] == "gflow"
  assert found["gflow_core"] == "gflow"
  assert "testflow" not in found


def test_third_party_distribution_is_discovered(plugin_on_path):
  assert registry.available()["testflow"] == "gflow-testplugin"
  assert "gflow_testplugin" not in sys.modules  # listing imports nothing
  builder = registry.get_model_builder("testflow")
  assert builder.__module__ == "gflow_testplugin"
  _, plugin, dist = registry.bijectors()["soft_signed_shift"]
  assert (plugin, dist) == ("testflow", "gflow-testplugin")


@pytest.mark.parametrize("name", sorted(
    # every bijector of every plugin, the test plugin's included
    list(registry.bijectors()) + ["soft_signed_shift"]))
def test_contract_over_every_registered_bijector(name, plugin_on_path):
  factory, _, _ = registry.bijectors()[name]
  testing.check_example(factory)


def test_unknown_name_lists_known_and_nearest():
  with pytest.raises(registry.PluginError, match=r"Unknown model 'glwo'\. Did you mean 'glow'\?.*Known:.*glow"):
    registry.get_model_builder("glwo")
  with pytest.raises(registry.PluginError, match="provides no model"):
    registry.get_model_builder("gflow_core")


def test_duplicate_name_names_both_distributions(tmp_path):
  info = tmp_path / "evil_glow-1.0.dist-info"
  info.mkdir()
  (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evil-glow\nVersion: 1.0\n")
  (info / "entry_points.txt").write_text("[gflow.plugins]\nglow = evil_glow:PLUGIN\n")
  sys.path.insert(0, str(tmp_path))
  registry.reset()
  try:
    with pytest.raises(registry.PluginError, match=r"plugin 'glow': (gflow and evil-glow|evil-glow and gflow)"):
      registry.available()
  finally:
    sys.path.remove(str(tmp_path))
    registry.reset()


def test_autoload_can_be_turned_off(plugin_on_path, monkeypatch):
  monkeypatch.setenv(registry.DISABLE_ENV, "1")
  registry.reset()
  assert "testflow" not in registry.available()
  assert "glow" in registry.available()


def test_gflow_list_and_gflow_train_find_the_test_plugin(tmp_path):
  env = {"PYTHONPATH": PLUGIN_SITE + os.pathsep + os.environ.get("PYTHONPATH", "")}
  listing = run_cli("list_plugins", env=env).stdout
  assert "testflow" in listing and "gflow-testplugin" in listing
  assert "soft_signed_shift" in listing and "conv1x1_lu" in listing
  out = run_cli("train", f"--config={CONFIG}:digits", f"--workdir={tmp_path}", *TINY,
                "--config.model.name=testflow", "--config.train.num_steps=5", env=env).stdout
  assert "test bits/dim:" in out
