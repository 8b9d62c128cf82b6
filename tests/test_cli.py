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


def test_lib_bytecode_is_cached_unless_the_user_says_not_to(env, tmp_path):
    """Invoke writes no .pyc by default; this tool's own package is cached (lib/__pycache__,
    ignored by git) unless PYTHONDONTWRITEBYTECODE or `python -B` says not to."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    def listing_writes_bytecode(name: str, extra_env: dict[str, str], *python_flags: str) -> bool:
        copy = tmp_path / name
        copy.mkdir()
        shutil.copy(PROJECT_ROOT / "tasks.py", copy)
        shutil.copy(PROJECT_ROOT / "invoke.yaml", copy)
        shutil.copytree(PROJECT_ROOT / "lib", copy / "lib", ignore=shutil.ignore_patterns("*.pyc"))
        run_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra_env
        result = subprocess.run(
            [sys.executable, *python_flags, "-m", "invoke", "--list"],
            cwd=copy,
            env=run_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert not (copy / "__pycache__").exists()  # tasks.py itself: Invoke's choice stands
        return any((copy / "lib" / "namespaces" / "__pycache__").glob("deploy.*.pyc"))

    assert listing_writes_bytecode("default", {})
    assert not listing_writes_bytecode("variable", {"PYTHONDONTWRITEBYTECODE": "1"})
    assert not listing_writes_bytecode("flag", {}, "-B")
