"""What the registry promises for every engine and provider it lists, and the walk-through that says so.

A registered engine must have its handler, its requirements, a template function per strategy, sample
events, a local target, integration tests and a docs page; ``docs/adding-an-engine.md`` lists the files
that takes, and that list must be both short and true.
"""

from __future__ import annotations

import re

import pytest

from cloudformation import load
from helpers import REPO_ROOT
from rotation_core.providers import PROVIDERS
from rotation_core.registry import EngineSpec, engines, rotation_functions
from rotation_local.events import EVENT_NAMES, event_folder, stale_events
from rotation_local.fake_providers import FAKE_PROVIDERS
from rotation_local.figures import block_in
from rotation_local.targets import database_targets

ENGINES = engines()
WALK_THROUGH = REPO_ROOT / "docs" / "adding-an-engine.md"
MAX_FILES = 6  # engine unit, handler, requirements, local target, tests, docs page


@pytest.fixture(scope="module")
def template_resources() -> dict[str, object]:
    resources: dict[str, object] = load(REPO_ROOT / "template.yaml")["Resources"]
    return resources


def walk_through_entries(block_name: str = "engine-files") -> list[str]:
    """The numbered entries of the walk-through's file list (or of its optional list)."""
    block = block_in(WALK_THROUGH.read_text(encoding="utf-8"), block_name)
    return re.findall(r"^\d+\. (.+?)(?=^\d+\. |\Z)", block, re.M | re.S)


def walk_through_paths() -> list[str]:
    """Every path the file list names for an engine (backticked, with ``<engine>`` and a ``/``)."""
    return [
        path
        for entry in walk_through_entries()
        for path in re.findall(r"`([^`\s()]+)`", entry)
        if "<engine>" in path and "/" in path
    ]


def test_registry_lists_the_engines_this_repository_ships() -> None:
    assert list(ENGINES) == ["mysql", "postgres", "valkey"]
    assert all(isinstance(spec, EngineSpec) for spec in ENGINES.values())


def test_walk_through_optional_file_is_one_emulator_for_engines_with_aws_grants() -> None:
    """The one file beyond the six: an emulator of the AWS API through which an engine reaches its users (ElastiCache
    and MemoryDB for Valkey), where moto lacks what the engine calls. Only engines that declare AWS grants have it,
    and every such engine does; no other file names an engine."""
    (entry,) = walk_through_entries("engine-optional-files")
    (pattern,) = re.findall(r"`([^`\s()]*<engine>[^`\s()]*)`", entry)
    assert "aws_grants" in entry
    for name, spec in ENGINES.items():
        path = REPO_ROOT / pattern.replace("<engine>", name)
        assert path.is_file() is bool(spec.aws_grants), name


def test_walk_through_file_list_has_at_most_six_entries_each_naming_a_path() -> None:
    entries = walk_through_entries()

    assert 1 <= len(entries) <= MAX_FILES
    assert all("<engine>" in entry for entry in entries)
    assert len(walk_through_paths()) >= len(entries)


@pytest.mark.parametrize("name", list(ENGINES))
def test_walk_through_every_listed_path_exists_for_registered_engine(name: str) -> None:
    missing = []
    for pattern in walk_through_paths():
        path = pattern.replace("<engine>", name)
        if "*" in path:
            if not list(REPO_ROOT.glob(path)):
                missing.append(path)
        elif not (REPO_ROOT / path).exists():
            missing.append(path)
    assert missing == [], f"{name}: the walk-through names files this engine lacks"


@pytest.mark.parametrize("name", list(ENGINES))
def test_registered_engine_has_handler_and_requirements_naming_its_driver(name: str) -> None:
    folder = REPO_ROOT / "functions" / name
    handler = (folder / "app.py").read_text(encoding="utf-8")
    requirements = (folder / "requirements.in").read_text(encoding="utf-8")

    assert f'lambda_handler = database_handler("{name}")' in handler
    assert re.search(rf"^{re.escape(ENGINES[name].driver)}==", requirements, re.M | re.I)
    assert (folder / "requirements.txt").is_file()


@pytest.mark.parametrize("name", list(ENGINES))
def test_registered_engine_has_template_function_per_strategy(name: str, template_resources: dict[str, object]) -> None:
    functions = [f for f in rotation_functions() if f.engine is not None and f.engine.name == name]

    assert [f.strategy for f in functions] == list(ENGINES[name].strategies)
    for function in functions:
        resource = template_resources.get(f"{function.logical_name}Function")
        assert isinstance(resource, dict), f"{function.logical_name}Function is not in template.yaml"
        assert resource["Properties"]["CodeUri"] == f"functions/{name}"


@pytest.mark.parametrize("name", list(ENGINES))
def test_registered_engine_has_event_per_step_and_preflight_of_each_function_and_env_sections(name: str) -> None:
    events = REPO_ROOT / "events"
    functions = [f for f in rotation_functions() if f.engine is not None and f.engine.name == name]

    assert len(functions) == len(ENGINES[name].strategies)
    env = (events / "env.json").read_text(encoding="utf-8")
    for function in functions:
        folder = events / event_folder(function)
        assert folder.parts[-2] == name
        assert sorted(p.stem for p in folder.glob("*.json")) == sorted(EVENT_NAMES)
        assert f'"{function.logical_name}Function"' in env


def test_sample_events_are_what_the_registry_renders() -> None:
    assert stale_events() == [], "run `make template`"


@pytest.mark.parametrize("name", list(ENGINES))
def test_registered_engine_has_local_target_with_server_kinds(name: str) -> None:
    target = database_targets().get(name)

    assert target is not None
    assert target.engine == name
    assert target.kinds
    assert all(kind.family == name for kind in target.kinds)
    assert target.kinds[0].from_host  # the demo and the benchmarks use the host's packages


def test_local_targets_are_exactly_the_registered_engines() -> None:
    assert list(database_targets()) == list(ENGINES)


@pytest.mark.parametrize("name", list(ENGINES))
def test_registered_engine_has_integration_tests_and_docs_page(name: str) -> None:
    tests = REPO_ROOT / "tests" / "integration" / name

    assert (tests / "conftest.py").is_file()
    assert list(tests.glob("test_*.py"))
    assert (REPO_ROOT / "docs" / "engines" / f"{name}.md").is_file()


@pytest.mark.parametrize("name", [name for name, spec in PROVIDERS.items() if all(spec.endpoints.values())])
def test_provider_with_public_endpoint_has_fake_and_docs(name: str) -> None:
    assert name in FAKE_PROVIDERS
    assert f'"provider":"{name}"' in (REPO_ROOT / "docs" / "api-keys.md").read_text(encoding="utf-8")
