"""Package discovery (everything else is in pyproject.toml).

`callbacks/` sits at the top of the repository and installs as `lit_rl.callbacks`, a
mapping pyproject's automatic discovery cannot express; every other package is found
under `lit_rl/`, so a new subpackage ships without editing a list.
"""

from setuptools import find_packages, setup

CALLBACKS = "lit_rl.callbacks"

setup(
    packages=[
        *find_packages(include=["lit_rl", "lit_rl.*"]),
        CALLBACKS,
        *(f"{CALLBACKS}.{name}" for name in find_packages("callbacks")),
    ],
    package_dir={CALLBACKS: "callbacks"},
)
