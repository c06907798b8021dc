"""Package discovery (everything else is in pyproject.toml).

`callbacks/` sits at the top of the repository and installs as `lit_rl.callbacks`, and
`recipes/` (YAML only) as the package data `lit_rl/recipes/` (so `lit-rl run NAME` finds
them after a plain install): mappings pyproject's automatic discovery cannot express.
Every other package is found under `lit_rl/`, so a new subpackage ships without editing
a list.
"""

from setuptools import find_packages, setup

CALLBACKS = "lit_rl.callbacks"
RECIPES = "lit_rl.recipes"

setup(
    packages=[
        *find_packages(include=["lit_rl", "lit_rl.*"]),
        CALLBACKS,
        *(f"{CALLBACKS}.{name}" for name in find_packages("callbacks")),
        RECIPES,
    ],
    package_dir={CALLBACKS: "callbacks", RECIPES: "recipes"},
    package_data={RECIPES: ["*.yaml", "*/*.yaml"]},
)
