"""Where recipes come from: a path, or the name of a recipe shipped with lit_rl.

`lit-rl run sac_pendulum` works from any folder: a name that is not an existing file is
looked up among the shipped recipes (`lit-rl recipes` lists them). They install with the
package (as `lit_rl/recipes/` in a wheel; in a source checkout they are `recipes/`).
"""

from __future__ import annotations

from pathlib import Path

import lit_rl
from lit_rl.errors import ConfigError

RECIPE_SUFFIXES = (".yaml", ".yml")


def shipped_recipes_dir() -> Path:
    """The shipped recipes: inside the installed package, or beside it in a checkout."""
    package = Path(lit_rl.__file__).resolve().parent
    for candidate in (package / "recipes", package.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"lit_rl's shipped recipes are missing (looked in {package})")


def shipped_recipes() -> dict[str, Path]:
    """Name (`sac_pendulum`, `datasets/pendulum`) -> file, for every runnable recipe
    (the `base/` fragments that recipes build on are not listed)."""
    root = shipped_recipes_dir()
    return {
        path.relative_to(root).with_suffix("").as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.suffix in RECIPE_SUFFIXES and path.relative_to(root).parts[0] != "base"
    }


def find_recipe(name_or_path: str) -> Path:
    """An existing file as given, else the shipped recipe of that name (with or without
    `.yaml`), else a one-line error naming close matches."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.as_posix()
    for suffix in RECIPE_SUFFIXES:
        name = name.removesuffix(suffix)
    recipes = shipped_recipes()
    if name in recipes:
        return recipes[name]
    import difflib

    close = difflib.get_close_matches(name, list(recipes), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else " (nor a shipped recipe's name)"
    raise ConfigError(f"recipe file not found: {name_or_path}{hint}")


def recipe_summary(path: Path) -> str:
    """The first line of a recipe's leading comment (what it runs)."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""
