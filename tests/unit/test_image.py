"""The Docker image holds what every command imports (no Docker engine needed).

The Dockerfile and .dockerignore are read as text; each command's import closure is the set
of modules reachable from its module by static imports (grimp, as `lint-imports` uses),
including the imports inside functions, which is where the commands import their dependencies.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import grimp
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from streams.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
DIST = "streamrank"
# The images' roles (Dockerfile): the runtime image serves; the trainer image also trains.
RUNTIME_COMMANDS = ("worker", "topics")
NEVER_AT_RUNTIME = {"torch", "transformers", "onnx", "matplotlib", "tqdm", "pytest", "mypy",
                    "yaml", "jsonschema", "importlinter", "grimp"}


@dataclass
class Stage:
    name: str
    lines: list[str] = field(default_factory=list)

    def instructions(self, keyword: str) -> list[str]:
        return [line.split(None, 1)[1] for line in self.lines
                if line.split(None, 1)[0].upper() == keyword]


def stages(text: str) -> dict[str, Stage]:
    """The Dockerfile's stages by name, each instruction on one line (continuations joined)."""
    joined = re.sub(r"\\\n", " ", text)
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            match = re.search(r"\bAS\s+(\S+)", line, re.IGNORECASE)
            current = Stage(match.group(1) if match else f"stage{len(found)}")
            found[current.name] = current
        elif current is not None:
            current.lines.append(line)
    return found


def shipped_packages() -> set[str]:
    """Top-level packages the distribution ships: pyproject's packages.find include."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return {pattern.rstrip("*").rstrip(".") for pattern in include}


def copied_from_context(stage: Stage) -> set[str]:
    """Paths a stage copies from the build context (not `--from=` another stage)."""
    out: set[str] = set()
    for args in stage.instructions("COPY"):
        if args.startswith("--from"):
            continue
        out.update(part.rstrip("/") for part in args.split()[:-1])
    return out


@cache
def dockerfile() -> dict[str, Stage]:
    return stages((ROOT / "Dockerfile").read_text())


def test_the_image_copies_every_package_pyproject_ships() -> None:
    source = dockerfile()["source"]
    assert shipped_packages() <= copied_from_context(source)
    assert {"pyproject.toml", "constraints.txt"} <= copied_from_context(source)
    assert any("pip wheel" in run and run.rstrip().endswith(" .")
               for run in source.instructions("RUN")), "the wheel is built from the copied tree"


def test_the_build_context_lets_every_copied_path_through() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: everything else stays out of the context"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    missing = copied_from_context(dockerfile()["source"]) - allowed
    assert not missing, f".dockerignore keeps {missing} out of the build context"


def test_only_the_trainer_image_installs_an_extra() -> None:
    images = dockerfile()
    assert list(images)[-1] == "runtime", "`docker build .` without --target gives the runtime"
    runtime_installs = [r for r in images["runtime"].instructions("RUN") if "pip install" in r]
    assert runtime_installs and not any("[" in r for r in runtime_installs), runtime_installs
    trainer_installs = " ".join(images["trainer"].instructions("RUN"))
    assert "train" in trainer_extras(), trainer_installs
    assert "dev" not in " ".join(r for s in images.values() for r in s.instructions("RUN"))
    # Serving starts without torch: the model comes exported from the trainer stage.
    assert any(c.startswith("--from=trainer") and "/models" in c
               for c in images["runtime"].instructions("COPY"))
    assert images["runtime"].instructions("CMD") == ['["streamrank", "worker"]']


def test_stage_parsing_sees_what_a_broken_dockerfile_lacks() -> None:
    broken = stages("FROM python AS source\nCOPY contracts contracts\nCOPY streams \\\n"
                    "  streams\nRUN pip wheel .\nFROM python AS runtime\nCOPY --from=source "
                    "/w /w\n")
    assert copied_from_context(broken["source"]) == {"contracts", "streams"}
    assert not shipped_packages() <= copied_from_context(broken["source"])


# --- import closures --------------------------------------------------------------------


@cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*sorted(shipped_packages()), include_external_packages=True,
                             exclude_type_checking_imports=True, cache_dir=None)


def closure(module: str) -> set[str]:
    """Modules importing `module` runs, statically: its imports, theirs, and so on, and each
    module's parent packages (importing a.b runs a/__init__.py)."""
    g = graph()
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        if name in g.modules:
            todo += g.find_modules_directly_imported_by(name)
    return seen


def external(modules: set[str]) -> set[str]:
    first_party = shipped_packages()
    tops = {m.split(".")[0] for m in modules}
    return {t for t in tops if t not in first_party and t not in sys.stdlib_module_names}


@cache
def installed_with(extras: tuple[str, ...]) -> frozenset[str]:
    """Distributions `pip install streamrank[extras]` brings, following requirements (with
    their own extras and markers) through the installed metadata."""
    found: set[str] = set()
    todo: list[tuple[str, tuple[str, ...]]] = [(DIST, extras)]
    done: set[tuple[str, tuple[str, ...]]] = set()
    while todo:
        name, wanted = todo.pop()
        key = (str(canonicalize_name(name)), tuple(sorted(wanted)))
        if key in done:
            continue
        done.add(key)
        found.add(key[0])
        try:
            requirements = md.requires(name) or []
        except md.PackageNotFoundError:
            continue  # not for this platform
        for text in requirements:
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": extra}) for extra in (*wanted, "")
            ):
                continue
            todo.append((req.name, tuple(req.extras)))
    return frozenset(found)


@cache
def distributions_by_module() -> dict[str, set[str]]:
    return {module: {str(canonicalize_name(d)) for d in dists}
            for module, dists in md.packages_distributions().items()}


def providers(module: str) -> set[str]:
    return distributions_by_module().get(module, set())


def local_packages() -> set[str]:
    """Python packages of this repository's top level, shipped or not (tests, ...)."""
    return {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | shipped_packages()


def in_image() -> set[str]:
    """The repository's packages inside the image: copied, and part of the wheel."""
    return shipped_packages() & copied_from_context(dockerfile()["source"])


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_imports_only_packages_the_images_have(command: str) -> None:
    assert COMMANDS[command] in graph().modules, "a command module the graph does not know"
    modules = closure(COMMANDS[command])
    ours = {m.split(".")[0] for m in modules} & local_packages()
    assert ours <= in_image(), f"`streamrank {command}` imports {ours - in_image()}"
    extras = trainer_extras()
    trainer = installed_with(extras)
    unprovided = {m for m in external(modules) - ours if not providers(m) & trainer}
    assert not unprovided, f"{command} imports {unprovided}: not installed by {extras}"


def trainer_extras() -> tuple[str, ...]:
    """The extras the trainer stage installs the wheel with (`...whl)[train,eval]`)."""
    found = [re.search(r"\.whl\)\[([\w,]+)\]", run) for run in
             dockerfile()["trainer"].instructions("RUN")]
    extras = [m.group(1) for m in found if m]
    assert len(extras) == 1, "the trainer installs the wheel once, with its extras"
    return tuple(sorted(extras[0].split(",")))


@pytest.mark.parametrize("command", RUNTIME_COMMANDS)
def test_runtime_commands_need_only_the_serving_dependencies(command: str) -> None:
    externals = external(closure(COMMANDS[command]))
    assert not externals & NEVER_AT_RUNTIME, externals & NEVER_AT_RUNTIME
    runtime = installed_with(())
    unprovided = {m for m in externals if not providers(m) & runtime}
    assert not unprovided, f"{command} imports {unprovided}, which the runtime image lacks"


def test_the_closure_follows_imports_inside_functions() -> None:
    """The model command imports torch only inside its export function: still seen."""
    assert "torch" in external(closure(COMMANDS["model"]))
    assert "torch" not in installed_with(()) and "torch" in installed_with(("train",))
