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
