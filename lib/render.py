"""Jinja2 rendering of the texts users may override (bug descriptions, tag messages, comments).

A template is looked up in the configured `templates.dir` first, then in the project's
templates/, so a user overrides one file by putting a file of the same name in their directory.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lib.errors import UserError
from lib.settings import PROJECT_ROOT, text_setting

DEFAULT_TEMPLATE_DIR = PROJECT_ROOT / "templates"


def template_dirs(template_dir: str | None) -> list[Path]:
    dirs = []
    if template_dir:
        from lib.settings import project_path

        user_dir = project_path(template_dir, "")
        if not user_dir.is_dir():
            raise UserError(f"templates.dir {user_dir} is not a directory")
        dirs.append(user_dir)
    dirs.append(DEFAULT_TEMPLATE_DIR)
    return dirs


@functools.lru_cache(maxsize=8)
def _environment(template_dir: str | None) -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(template_dir)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(name: str, context: dict[str, Any], template_dir: str | None = None) -> str:
    """Render template `name` with `context`; any template problem is a one-line UserError."""
    import jinja2

    env = _environment(template_dir)
    _refuse_unreadable_override(name, template_dir)
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or name
        raise UserError(f"template {where}, line {exc.lineno}: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(str(d) for d in template_dirs(template_dir))
        if exc.name != name:  # `name` exists; what it includes or extends does not
            raise UserError(
                f"template {_where(exc, name)}: includes {exc.name}, which is not in {searched}"
            ) from None
        raise UserError(f"template {name} not found in {searched}") from None
    except jinja2.UndefinedError as exc:
        raise UserError(f"template {_where(exc, name)}: {exc.message}") from None
    except UnicodeDecodeError:
        found = next((d / name for d in template_dirs(template_dir) if (d / name).is_file()), name)
        raise UserError(f"template {found} is not UTF-8 text") from None
    except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        # Errors of the template's own expressions ({{ 1/0 }}, {{ x[5] }}, a bad filter use).
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise UserError(
            f"template {_where(exc, name)}: {type(exc).__name__}{': ' + detail if detail else ''}"
        ) from None
    except RecursionError:
        raise UserError(
            f"template {name} includes or extends itself without end (check its "
            "{% include %} and {% extends %} lines)"
        ) from None


def _refuse_unreadable_override(name: str, template_dir: str | None) -> None:
    """An entry `name` in templates.dir that is not a readable file (a directory, a dangling
    link) is an error: Jinja2 would silently use the project's template instead."""
    if not template_dir:
        return
    candidate = template_dirs(template_dir)[0] / name
    if (candidate.exists() or candidate.is_symlink()) and not candidate.is_file():
        raise UserError(f"template {candidate} is not a file (templates.dir overrides {name})")


def preload(names: list[str], template_dir: str | None = None) -> None:
    """Import Jinja2 and compile the templates `names` ahead of rendering (e.g. while git works
    in the background). A problem is left for `render` to report, in its place and words."""
    import jinja2

    try:
        env = _environment(template_dir)
        for name in names:
            env.get_template(name)
    except (jinja2.TemplateError, UserError, UnicodeDecodeError, OSError):
        pass


def _where(exc: BaseException, name: str) -> str:
    """`path, line N` of the template frame a rendering error came from (Jinja2 rewrites the
    traceback so that template lines appear as frames), else the template's name."""
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return f"{frame.filename}, line {frame.lineno}"
    return name


def _configured_dir(c: Any) -> str | None:
    return text_setting(c, "templates.dir", required=False) or None


def render_config(c: Any, name: str, context: dict[str, Any]) -> str:
    """Render with the template directory from the `templates.dir` setting."""
    return render(name, context, _configured_dir(c))


def preload_config(c: Any, names: list[str]) -> None:
    """`preload` with the template directory from the `templates.dir` setting."""
    preload(names, _configured_dir(c))
