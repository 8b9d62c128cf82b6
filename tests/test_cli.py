"""The collection loads, lists every namespace, and every task has help."""

import json


def test_list_shows_every_namespace(invoke):
    result = invoke("--list", "-F", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = {c["name"] for c in data["collections"]}
    assert {"deploy", "crashes", "db", "deps", "pii"} <= names
    for collection in data["collections"]:
        assert collection["help"], f"namespace {collection['name']} has no docstring"


def test_every_task_has_help_for_every_argument(invoke):
    data = json.loads(invoke("--list", "-F", "json").stdout)
    for collection in data["collections"]:
        for task in collection["tasks"]:
            name = f"{collection['name']}.{task['name']}"
            result = invoke("--help", name)
            assert result.returncode == 0, (name, result.stderr)
            for line in result.stdout.splitlines():
                stripped = line.strip()
                if stripped.startswith("-") and "--help" not in stripped:
                    # "  -x STRING, --xyz=STRING   help text": the help text must be there.
                    assert "  " in stripped, f"{name}: no help for {stripped!r}"


def test_lib_bytecode_is_cached_unless_pythondontwritebytecode(env, tmp_path):
    """Invoke writes no .pyc by default; this tool's own package is cached (lib/__pycache__,
    ignored by git) unless the user's PYTHONDONTWRITEBYTECODE says not to."""
    import shutil

    from tests.conftest import PROJECT_ROOT, run_invoke

    def listing_writes_bytecode(extra: dict[str, str]) -> bool:
        copy = tmp_path / f"copy{len(extra)}"
        copy.mkdir()
        shutil.copy(PROJECT_ROOT / "tasks.py", copy)
        shutil.copy(PROJECT_ROOT / "invoke.yaml", copy)
        shutil.copytree(PROJECT_ROOT / "lib", copy / "lib", ignore=shutil.ignore_patterns("*.pyc"))
        run_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra
        result = run_invoke("--list", cwd=copy, env=run_env)
        assert result.returncode == 0, result.stderr
        assert not (copy / "__pycache__").exists()  # tasks.py itself: Invoke's choice stands
        return any((copy / "lib" / "namespaces" / "__pycache__").glob("deploy.*.pyc"))

    assert listing_writes_bytecode({})
    assert not listing_writes_bytecode({"PYTHONDONTWRITEBYTECODE": "1"})
