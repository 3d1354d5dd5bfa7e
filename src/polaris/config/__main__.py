"""``python -m polaris.config``: print the recipe reference (``docs/recipe-file.md``)."""

from polaris.config.reference import recipe_reference

print(recipe_reference(), end="")
