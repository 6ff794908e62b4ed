"""train.jit_compile: true, false, or unset (XLA on GPUs only, gflow.train.xla_choice)."""

import pytest

from gflow.train import Trainer
from gflow.train.validate import ConfigError, validate
from gflow.train.xla_choice import describe, jit_compile_for
from tests.conftest import model_config

GPU = "/job:localhost/replica:0/task:0/device:GPU:0"
CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


@pytest.mark.parametrize("value, devices, expected", [
    (None, [CPU], False), (None, [GPU], True), (None, [CPU, GPU], True),
    (None, ["/device:CPU:0", "/device:CPU:1"], False),
    (True, [CPU], True), (False, [GPU], False)])
def test_unset_compiles_on_gpus_only_and_a_given_value_wins(value, devices, expected):
  assert jit_compile_for(value, devices) is expected


def test_the_log_says_what_unset_chose_and_nothing_when_set():
  assert describe(True, [CPU]) is None and describe(False, [GPU]) is None
  assert describe(None, [GPU]).startswith("XLA compiles the training step")
  assert "--config.train.jit_compile=true" in describe(None, [CPU])


def test_a_value_other_than_true_false_or_unset_is_refused():
  with pytest.raises(TypeError, match="true, false or unset"):
    jit_compile_for("auto", [CPU])
  c = model_config("glow")
  with c.ignore_type():
    c.train.jit_compile = "auto"
  with pytest.raises(ConfigError, match=r"config.train.jit_compile must be true, false or "
                                        r"unset .*got 'auto'"):
    validate(c)


def test_modules_without_shared_traces_is_refused_unless_xla_is_off():
  c = model_config("denseflow", "cifar10")
  c.train.shared_traces = False
  assert c.train.jit_scope == "modules" and c.train.jit_compile is None
  with pytest.raises(ConfigError, match="needs config.train.shared_traces=True"):
    validate(c)  # unset: it compiles on a GPU
  c.train.jit_compile = False
  validate(c)


@pytest.mark.parametrize("model", ["glow", "denseflow"])
def test_the_glow_and_denseflow_configs_leave_it_unset(model):
  assert model_config(model).train.jit_compile is None


def test_a_cpu_run_of_the_default_config_trains_without_xla(tiny_config, tmp_path, capsys):
  trainer = Trainer(tiny_config, str(tmp_path / "run"), verbose=True)
  assert trainer.jit_compile is False
  assert "XLA is off: train.jit_compile is unset" in capsys.readouterr().out
  trainer._make_train_step()
  assert not trainer._xla and not trainer._xla_modules
  tiny_config.train.jit_compile = True
  trainer = Trainer(tiny_config, str(tmp_path / "xla"), verbose=True)
  assert trainer.jit_compile is True and "XLA is off" not in capsys.readouterr().out
  trainer._make_train_step()
  assert trainer._xla
