"""Recipe files: one YAML file describes a whole POLARIS run.

Every section is a dataclass; each field is documented once, in :mod:`polaris.config.schema` (the text of
``polaris run --help`` and of ``docs/recipe-file.md``). Unknown keys and bad values fail with the
file and the key path named (``recipes/x.yaml: stages[1].temperature: expected a number``). Every
key can be overridden on the command line: ``--set train.learning_rate=1e-5``.
See ``recipes/tiny-cpu.yaml`` (the default) and docs/method.md for what each mechanism does.

The package, one job per module: :mod:`~polaris.config.schema` (the sections and their fields),
:mod:`~polaris.config.reading` (YAML, ``--set`` overrides, error messages),
:mod:`~polaris.config.checks` (checks across sections, the batch split), :mod:`~polaris.config.reference`
(``docs/recipe-file.md``). Everything is importable from ``polaris.config``.
"""

from polaris.config.checks import BatchSplit, batch_split, check_recipe, stage_context, stage_learning_rate
from polaris.config.reading import (
    apply_overrides,
    load_recipe,
    read_recipe_data,
    recipe_from_data,
    valid_keys,
)
from polaris.config.reference import field_docs, json_default, recipe_reference
from polaris.config.schema import (
    BUILTIN_MODEL,
    BUILTIN_TEST,
    BUILTIN_TRAIN,
    STRICT,
    DataSettings,
    EngineSettings,
    EvalSettings,
    LaunchSettings,
    ModelSettings,
    ProfileSettings,
    RecipeConfig,
    RewardSettings,
    StageSettings,
    TemperatureSearchSettings,
    TinyTaskSettings,
    TrainSettings,
    ValidationSettings,
    WarmStartSettings,
    to_dict,
)

__all__ = [
    "BUILTIN_MODEL", "BUILTIN_TEST", "BUILTIN_TRAIN", "STRICT", "BatchSplit", "DataSettings", "EngineSettings",
    "EvalSettings", "LaunchSettings", "ModelSettings", "ProfileSettings", "RecipeConfig", "RewardSettings",
    "StageSettings", "TemperatureSearchSettings", "TinyTaskSettings", "TrainSettings", "ValidationSettings",
    "WarmStartSettings", "apply_overrides", "batch_split", "check_recipe", "field_docs", "json_default",
    "load_recipe", "read_recipe_data", "recipe_from_data", "recipe_reference", "stage_context",
    "stage_learning_rate", "to_dict", "valid_keys",
]
