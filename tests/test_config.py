"""Every setting in invoke.yaml can be overridden from the environment without a traceback."""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT_ROOT

# (task and arguments, environment override that is not a number, the key named in the error)
BAD_NUMBERS = [
    (("db.url",), "INVOKE_DB_PORT", "port"),
    (("deploy.prepare", "--offline", "--file-bug"), "INVOKE_BUGZILLA_TIMEOUT", "bugzilla.timeout"),
    (
        ("crashes.reprocess", "--crash-id", "x", "--dry-run"),
        "INVOKE_CRASHES_MAX_ATTEMPTS",
        "max_attempts",
    ),
    (("deploy.watch", "1", "--timeout", "1"), "INVOKE_DEPLOY_WATCH_INTERVAL", "interval"),
]


@pytest.mark.parametrize("bad", ["abc", "nan", "inf"])
@pytest.mark.parametrize(("args", "variable", "named"), BAD_NUMBERS)
def test_a_bad_number_override_is_one_clear_line(invoke, service_repo, args, variable, named, bad):
    """Regression (nan, inf): bugzilla.timeout=nan blamed the server, inf overflowed time_t."""
    env = {variable: bad, "INVOKE_DEPLOY_REPO": str(service_repo.path), "BUGZILLA_API_KEY": "k"}
    env["INVOKE_BUGZILLA_URL"] = "http://127.0.0.1:9/rest/"
    result = invoke(*args, extra_env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert named in line and f"'{bad}'" in line, result.stderr


def test_numbers_are_declared_as_strings_in_invoke_yaml():
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "invoke.yaml").read_text())

    def leaves(node, path=""):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{path}{key}.")
            else:
                yield f"{path}{key}", value

    for key, value in leaves(config):
        assert not isinstance(value, (int, float, list)) or isinstance(value, bool), (
            f"{key} must be a string so INVOKE_* overrides are checked by the tasks, not Invoke"
        )


def test_list_settings_accept_comma_separated_overrides(invoke, tmp_path):
    (tmp_path / "a.txt").write_text("jinja2==3.1.6\n")
    (tmp_path / "b.txt").write_text("requests==2.34.2\n")
    result = invoke(
        "--dry", "deps.check", cwd=tmp_path, extra_env={"INVOKE_DEPS_REQUIREMENTS": "a.txt, b.txt"}
    )
    assert result.returncode == 0, result.stderr
    assert "a.txt" in result.stdout + result.stderr and "b.txt" in result.stdout + result.stderr


def refused_with_config(invoke, service_repo, tmp_path, yaml_text: str):
    """Run deploy.prepare with `yaml_text` as a `-f` config file, expecting a clean refusal."""
    service_repo.commit("work")
    config = tmp_path / "releng.yaml"
    config.write_text(yaml_text)
    result = invoke(
        "-f", str(config), "deploy.prepare", "--repo", str(service_repo.path), "--offline"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize(
    ("yaml_text", "named"),
    [
        ("deploy:\n  main_branch: [main, master]\n", "deploy.main_branch"),
        ("deploy:\n  github_repo: [a/b]\n", "deploy.github_repo"),
        ("bugzilla:\n  product: [Socorro]\n", "bugzilla.product"),
    ],
)
def test_a_list_where_one_value_belongs_is_one_clear_line(
    invoke, service_repo, tmp_path, yaml_text, named
):
    """Regression: `main_branch: [a, b]` in a -f file gave `branch "['a', 'b']" does not exist`."""
    result = refused_with_config(invoke, service_repo, tmp_path, yaml_text)
    assert f"config value {named} must be a single value, not a list" in result.stderr, (
        result.stderr
    )


def test_list_settings_accept_yaml_lists(invoke, tmp_path):
    (tmp_path / "a.txt").write_text("jinja2==3.1.6\n")
    (tmp_path / "b.txt").write_text("requests==2.34.2\n")
    config = tmp_path / "releng.yaml"
    config.write_text("deps:\n  requirements: [a.txt, b.txt]\n")
    result = invoke("-f", str(config), "--dry", "deps.check", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "a.txt" in result.stdout + result.stderr and "b.txt" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("deploy:\n  main_branch: null\n", "config value deploy.main_branch is empty"),
        ("deploy:\n  remote: ''\n", "config value deploy.remote is empty"),
        ("deploy:\n  project: yes\n", "config value deploy.project must be text, not true"),
        ("templates:\n  dir: true\n", "config value templates.dir must be text, not true"),
        ("bugzilla:\n  component: false\n", "config value bugzilla.component must be text"),
    ],
)
def test_an_empty_or_true_false_text_setting_is_one_clear_line(
    invoke, service_repo, tmp_path, yaml_text, expected
):
    """Regression: `main_branch: null` gave "branch 'None' does not exist"; `templates.dir: true`
    looked for a directory named True; `project: yes` filed "True deploy: 101"."""
    result = refused_with_config(invoke, service_repo, tmp_path, yaml_text)
    (line,) = result.stderr.strip().splitlines()
    assert expected in line, result.stderr
    assert result.stdout == ""


def test_an_empty_setting_from_the_environment_is_named(invoke, service_repo):
    service_repo.commit("work")
    env = {"INVOKE_DEPLOY_MAIN_BRANCH": "", "INVOKE_DEPLOY_REPO": str(service_repo.path)}
    result = invoke("deploy.prepare", "--offline", extra_env=env)
    assert result.returncode != 0
    (line,) = result.stderr.strip().splitlines()
    assert "config value deploy.main_branch is empty" in line
    assert "INVOKE_DEPLOY_MAIN_BRANCH" in line
