"""Named training recipes: bundles of a VAE's own settings, measured on one benchmark.

`fast` is the defaults; `quality` trains on the importance-weighted bound
with more samples and more input dropout, for a better test likelihood at a
fraction of the speed. Both keep the architecture, the epochs and the data:
a recipe only chooses how the same model is trained. `benchmarks/quality.py`
measures both against the reference Keras-example VAE in one run
(docs/benchmarks.md has the figures).

`tfvae train --recipe quality` fills in only the settings the recipe names
that were not given as flags: `--iwae-samples 5` wins over the recipe's.
In Python, pass the settings to the config, with your own after them:

>>> from tfvae import TrainConfig
>>> from tfvae.training.recipes import recipe_settings
>>> config = TrainConfig(**{**recipe_settings("quality"), "iwae_samples": 5})
>>> config.iwae_samples, config.input_dropout, config.learning_rate
(5, 0.2, 0.004)
"""

import dataclasses

from tfvae.errors import TfvaeError

__all__ = ["RECIPES", "RECIPE_SETTINGS", "Recipe", "recipe_settings"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named bundle of settings of one model family.

    Args:
        name: str. What `--recipe` takes.
        summary: str. One line for `--help` and the docs.
        settings: dict. The family's settings the recipe sets.
        model: str. The family the settings belong to.
    """

    name: str
    summary: str
    settings: dict
    model: str = "vae"


RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "fast",
            "the defaults: the ELBO, input dropout 0.1, KL warm-up over the first fifth of the run",
            {},
        ),
        Recipe(
            "quality",
            "the importance-weighted bound with 50 samples, input dropout 0.2 and a step "
            "size of 4e-3: a better test likelihood, at about a fourteenth of the speed",
            {"iwae_samples": 50, "input_dropout": 0.2, "learning_rate": 4e-3},
        ),
    )
}
# Every setting some recipe sets.
RECIPE_SETTINGS = tuple(sorted({name for r in RECIPES.values() for name in r.settings}))


def recipe_settings(name, model="vae"):
    """The settings recipe `name` sets for a `model` run; raises `TfvaeError` if it does not apply.

    Args:
        name: str. A key of `RECIPES`.
        model: str. The family of the run.
    """
    if name not in RECIPES:
        raise TfvaeError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    if recipe.settings and model != recipe.model:
        raise TfvaeError(
            f"--recipe {name} is a recipe for --model {recipe.model} (it sets "
            f"{', '.join(sorted(recipe.settings))}); it applies to --model {recipe.model} only. "
            f"Received: --model {model}"
        )
    return dict(recipe.settings)
