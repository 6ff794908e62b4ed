"""The Bazel BUILD files agree with the tree (fix with: python tools/gen_build.py).

The BUILD files are read by executing them as Python with stub rules that
record each target's arguments (Starlark's BUILD dialect is Python syntax).
"""

import glob as globlib
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGENERATE = "run: python tools/gen_build.py"
BUILD_FILES = ("BUILD", "BUILD.bazel")
SOURCE_TREES = ("gflow", "plugins")  # every .py file here is the srcs of a target


def _load_generator():
  spec = importlib.util.spec_from_file_location("gen_build", os.path.join(REPO, "tools",
                                                                           "gen_build.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _walk(top, keep):
  """Relative paths ("/"-separated) of the files under `top` for which keep(name) holds."""
  out = []
  for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, top)):
    dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
    out += [os.path.relpath(os.path.join(dirpath, f), REPO).replace(os.sep, "/")
            for f in filenames if keep(f)]
  return sorted(out)


class Target:

  def __init__(self, kind, pkg, kwargs):
    self.kind, self.pkg, self.kwargs = kind, pkg, kwargs
    self.name = kwargs.get("name")
    self.label = f"//{pkg}:{self.name}"

  def files(self, attr):
    """The repo paths of the source files an attribute names (srcs, main)."""
    value = self.kwargs.get(attr, [])
    return [_file_path(v, self.pkg) for v in ([value] if isinstance(value, str) else value)]


class Requirement(str):
  pass


def _file_path(label, pkg):
  if label.startswith("//"):
    p, _, name = label[2:].partition(":")
    return f"{p}/{name}" if p else name
  name = label.lstrip(":")
  return f"{pkg}/{name}" if pkg else name


def _target_label(label, pkg):
  """Canonical "//pkg:name" of a dep ("//a/b" is "//a/b:b", ":x" is in `pkg`)."""
  if label.startswith("//"):
    p, sep, name = label[2:].partition(":")
    return f"//{p}:{name if sep else os.path.basename(p)}"
  return f"//{pkg}:{label.lstrip(':')}"


def _parse_build(path):
  pkg = os.path.dirname(path)
  targets = []

  def rule(kind):
    def record(*args, **kwargs):
      if args:
        kwargs.setdefault("srcs", list(args[0]))
      targets.append(Target(kind, pkg, kwargs))
    return record

  def glob(include, exclude=()):
    base = os.path.join(REPO, pkg)
    found = set()
    for pattern in include:
      found |= {os.path.relpath(p, base) for p in globlib.glob(os.path.join(base, pattern),
                                                                recursive=True)
                if os.path.isfile(p)}
    for pattern in exclude:
      found -= {os.path.relpath(p, base) for p in globlib.glob(os.path.join(base, pattern),
                                                                recursive=True)}
    return sorted(f.replace(os.sep, "/") for f in found)

  namespace = {
      "load": lambda *a, **k: None,
      "package": lambda **k: None,
      "requirement": Requirement,
      "glob": glob,
      "exports_files": rule("exports_files"),
  }
  for kind in ("py_library", "py_binary", "py_test", "filegroup", "compile_pip_requirements"):
    namespace[kind] = rule(kind)
  with open(os.path.join(REPO, path), encoding="utf-8") as f:
    exec(compile(f.read(), path, "exec"), namespace)  # noqa: S102
  return targets


@pytest.fixture(scope="module")
def targets():
  paths = [b for b in BUILD_FILES if os.path.isfile(os.path.join(REPO, b))]
  for top in (*SOURCE_TREES, "tests", "configs"):
    paths += _walk(top, lambda f: f in BUILD_FILES)
  found = []
  for path in paths:
    found += _parse_build(path)
  assert found, "no BUILD files; " + REGENERATE
  return found


def _srcs_of(targets, kinds):
  return {f for t in targets if t.kind in kinds for f in t.files("srcs")}


def test_every_module_is_the_srcs_of_a_library(targets):
  modules = [p for top in SOURCE_TREES for p in _walk(top, lambda f: f.endswith(".py"))]
  assert modules
  in_libraries = _srcs_of(targets, {"py_library"})
  missing = [m for m in modules if m not in in_libraries]
  assert not missing, f"modules in no py_library: {missing}; {REGENERATE}"


def test_every_library_has_one_module_named_after_it(targets):
  for t in targets:
    if t.kind == "py_library" and t.pkg.split("/")[0] in SOURCE_TREES:
      (src,) = t.files("srcs")
      stem = os.path.basename(src)[:-3]
      assert t.name == (os.path.basename(t.pkg) if stem == "__init__" else stem), t.label


def test_every_test_file_has_its_own_py_test(targets):
  test_files = _walk("tests", lambda f: f.startswith("test_") and f.endswith(".py"))
  assert "tests/test_build_sync.py" in test_files
  tests = {(t.pkg, t.name): t for t in targets if t.kind == "py_test"}
  for path in test_files:
    t = tests.get((os.path.dirname(path), os.path.basename(path)[:-3]))
    assert t is not None, f"{path} has no py_test; {REGENERATE}"
    assert path in t.files("srcs"), t.label
  extra = sorted(f"//{pkg}:{name}" for pkg, name in tests
                 if f"{pkg}/{name}.py" not in test_files)
  assert not extra, f"py_tests without a test file: {extra}; {REGENERATE}"


def test_srcs_and_main_exist(targets):
  for t in targets:
    for attr in ("srcs", "main"):
      for f in t.files(attr):
        assert os.path.isfile(os.path.join(REPO, f)), f"{t.label}: {attr} {f} does not exist"


def test_local_deps_are_defined_and_acyclic(targets):
  defined = {t.label for t in targets if t.name}
  graph = {}
  for t in targets:
    deps = [d for d in t.kwargs.get("deps", []) if not isinstance(d, Requirement)]
    graph[t.label] = [_target_label(d, t.pkg) for d in deps]
    for d in graph[t.label]:
      assert d in defined, f"{t.label} depends on {d}, which no BUILD file defines"
  state = {}

  def visit(node, path):
    state[node] = "open"
    for d in graph.get(node, ()):
      assert state.get(d) != "open", "dependency cycle: " + " -> ".join([*path, d])
      if d not in state:
        visit(d, [*path, d])
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node, [node])


def test_build_files_are_the_generators_output():
  gen = _load_generator()
  want = gen.generate()  # {path: text}, writes nothing
  assert "gflow/BUILD" in want
  stale = gen.diff()
  assert not stale, f"BUILD files out of date: {stale}; {REGENERATE}"
