"""gflow.bfloat16_speed: a warning when mixed_bfloat16 runs on hardware without bfloat16
arithmetic (11x slower on an AVX2 CPU), none where it is fast or cannot be told."""

from gflow import bfloat16_speed
from gflow.bfloat16_speed import cpu_has_bfloat16, slow_bfloat16_warning
from gflow.train.trainer import Trainer

_X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma{}\n\n"
_ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm{}\nCPU implementer\t: 0x41\n"
_CPU = ["/device:CPU:0"]


def _cpuinfo(tmp_path, text, name="cpuinfo"):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


def test_the_cpus_flags_are_read(tmp_path):
  assert cpu_has_bfloat16(_cpuinfo(tmp_path, _X86.format(""))) is False
  assert cpu_has_bfloat16(_cpuinfo(tmp_path, _X86.format(" avx512f avx512_bf16"))) is True
  assert cpu_has_bfloat16(_cpuinfo(tmp_path, _X86.format(" amx_tile amx_bf16"))) is True
  assert cpu_has_bfloat16(_cpuinfo(tmp_path, _ARM.format(""))) is False
  assert cpu_has_bfloat16(_cpuinfo(tmp_path, _ARM.format(" bf16 i8mm"))) is True
  assert cpu_has_bfloat16(str(tmp_path / "absent")) is None


def test_a_warning_only_for_mixed_bfloat16_on_a_cpu_without_it(tmp_path):
  slow = _cpuinfo(tmp_path, _X86.format(""))
  message = slow_bfloat16_warning("mixed_bfloat16", _CPU, cpuinfo=slow)
  assert "no bfloat16 arithmetic" in message and "network_dtype=float32" in message
  assert slow_bfloat16_warning("mixed_bfloat16", [], cpuinfo=slow) == message  # default device
  for policy in ("", "float32", "mixed_float16"):
    assert slow_bfloat16_warning(policy, _CPU, cpuinfo=slow) is None
  fast = _cpuinfo(tmp_path, _X86.format(" avx512_bf16"), name="fast")
  assert slow_bfloat16_warning("mixed_bfloat16", _CPU, cpuinfo=fast) is None
  unknown = str(tmp_path / "absent")
  assert slow_bfloat16_warning("mixed_bfloat16", _CPU, cpuinfo=unknown) is None
  assert slow_bfloat16_warning("mixed_bfloat16", ["/device:TPU:0"], cpuinfo=slow) is None


def test_the_trainer_warns_as_it_builds_the_model(tmp_path, tiny_config, capsys, monkeypatch):
  monkeypatch.setattr(bfloat16_speed, "cpu_has_bfloat16", lambda cpuinfo=None: False)
  tiny_config.model.network_dtype = "mixed_bfloat16"
  Trainer(tiny_config, str(tmp_path / "bf16"), verbose=True)
  assert "model.network_dtype='mixed_bfloat16'" in capsys.readouterr().err
  tiny_config.model.network_dtype = "float32"
  Trainer(tiny_config, str(tmp_path / "f32"), verbose=True)
  assert "mixed_bfloat16" not in capsys.readouterr().err


def test_on_gpus_their_compute_capability_decides(tmp_path, monkeypatch):
  slow_cpu = _cpuinfo(tmp_path, _X86.format(""))
  gpu = ["/job:localhost/replica:0/task:0/device:GPU:0"]
  for capabilities, warns in (([(7, 0)], True), ([(8, 0)], False), ([(9, 0), (7, 5)], True),
                              ([None], False)):
    monkeypatch.setattr(bfloat16_speed, "_gpu_capabilities", lambda devices, c=capabilities: c)
    message = slow_bfloat16_warning("mixed_bfloat16", gpu, cpuinfo=slow_cpu)
    assert (message is not None) == warns, capabilities
    if warns:
      assert "compute capability 7." in message
