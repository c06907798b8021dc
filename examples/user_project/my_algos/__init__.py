"""A user's own package: an algorithm class and an env, run by lit_rl from a recipe."""
