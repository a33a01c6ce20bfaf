"""Starting a run from a trained model: ``init_from``, ``alphabet_resize`` and ``freeze``.

The network of the run is built from its own config; every layer takes the weights of the
layer of the same name in the starting model, whose shapes must be the same. The output
layer (``logits``, one row per alphabet code) is the exception: its rows follow the units, so
that a unit keeps what the model learnt of it whatever its code in the new alphabet.

A unit the model has never seen starts as a copy of the blank's row lowered by
``NEW_UNIT_LOGIT_OFFSET``: its probability is e^-10 of the blank's on every frame, so the
best path never holds it before training has taught it, and the model reads what it read.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tf_crnn.alphabet import BLANK_INDEX, Alphabet
from tf_crnn.artifacts import ALPHABET_FILENAME, config_file, is_builtin, resolve_model, weights_file
from tf_crnn.config import ARCHITECTURE_KEYS, CONFIG_FILENAME, ConfigError, Params, model_params
from tf_crnn.network.language_model import CharNgram, load_lm
from tf_crnn.network.layers import OUTPUT_LAYER, build_network, copy_weights
from tf_crnn.records import read_csv_rows, split_label

logger = logging.getLogger(__name__)

FEW_LINES = 10
"""New units held by fewer training lines than this are warned about: too few to learn from."""
FROZEN_PREFIXES = {"none": (), "norm": (), "cnn": ("conv_block_",), "cnn+rnn": ("conv_block_", "bilstm_")}


@dataclass
class BaseModel:
    """A trained model to start from: its parameters (architecture, alphabet) and weights."""

    spec: str
    params: Params
    weights: Path


def find_base_model(spec: str, key: str = "init_from") -> BaseModel:
    """Resolves ``init_from`` (or the config key ``key``): ``builtin:NAME``, an ``output_model_dir`` (its newest export, else
    its best checkpoint), an export folder, or a ``.weights.h5`` with ``config.json`` beside it.

    Raises:
        ConfigError: nothing usable at ``spec``.
    """
    path = Path(spec)
    if not is_builtin(spec) and path.is_file() and path.name.endswith(".weights.h5"):
        folder, weights = path.parent, path
    else:
        try:
            folder = resolve_model(spec, checkpoints=True)
        except FileNotFoundError as e:
            raise ConfigError(
                f"{key}: {e}"
                if is_builtin(spec)
                else f"{key}: {spec} is not a tf_crnn model; give "
                "builtin:NAME (see 'tf-crnn models'), an output_model_dir, an export folder or a .weights.h5 file "
                "with its config.json beside it"
            ) from None
        weights = weights_file(folder)
    config = config_file(folder)
    if not config.is_file():
        raise ConfigError(f"{key}: {weights} has no {CONFIG_FILENAME} beside it; copy the model's config there")
    try:
        if (config.parent / ALPHABET_FILENAME).is_file():
            params = model_params(config.parent)
        else:
            params = Params.from_json_file(config)
        params.alphabet  # noqa: B018 - reads the lookup now
    except (ValueError, OSError) as e:
        raise ConfigError(f"{key}: cannot read the model in {config.parent}: {e}") from None
    return BaseModel(spec, params, weights)


@dataclass
class AlphabetPlan:
    """The run's alphabet and, for each of its codes, the model's output row it starts from
    (``None``: a unit the model does not know)."""

    lookup: dict[str, int]
    rows: list[int | None]
    new_units: list[str]
    dropped_units: list[str]


def quoted_units(units: list[str], limit: int = 20) -> str:
    """Units as a message lists them: quoted, the first ``limit``, then how many more."""
    shown = " ".join(repr(u) for u in units[:limit])
    return shown + (f" and {len(units) - limit} more" if len(units) > limit else "")


def plan_alphabet(model: Alphabet, data: Alphabet, mode: str, data_source: str = "the data") -> AlphabetPlan:
    """Matches the data's alphabet to the model's as ``alphabet_resize`` (``mode``) says.

    Raises:
        ConfigError: the alphabets differ and ``mode`` is ``fail``.
    """
    model_lookup, data_lookup = model.lookup, data.lookup
    only_data = [u for u in data_lookup if u not in model_lookup]
    only_model = [u for u in model_lookup if u not in data_lookup]
    if not only_data and not only_model:
        # The same units: the model's codes, so that every row stays where it is.
        return AlphabetPlan(model_lookup, list(range(model.n_classes)), [], [])
    if mode == "fail":
        sides = []
        if only_data:
            sides.append(f"{len(only_data)} only in {data_source}: {quoted_units(only_data)}")
        if only_model:
            sides.append(f"{len(only_model)} only in the model: {quoted_units(only_model)}")
        raise ConfigError(
            f"alphabet_resize: the alphabets differ ({'; '.join(sides)}); set alphabet_resize=union to keep "
            "the model's units and add the data's, or alphabet_resize=new to take the data's alphabet"
        )
    if mode == "union":
        lookup = dict(model_lookup)
        code = model.n_classes
        for unit in only_data:
            lookup[unit] = code
            code += 1
        rows = list(range(model.n_classes)) + [None] * len(only_data)
        return AlphabetPlan(lookup, rows, only_data, [])
    rows: list[int | None] = [None] * data.n_classes
    rows[BLANK_INDEX] = BLANK_INDEX
    for unit, code in data_lookup.items():
        rows[code] = model_lookup.get(unit)
    return AlphabetPlan(dict(data_lookup), rows, only_data, only_model)


def _weighted_layers(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.get_weights()}


def _architecture_hint(base: BaseModel) -> str:
    values = base.params.to_dict()
    return ", ".join(f"{key} {values[key]}" for key in ARCHITECTURE_KEYS)


def check_shapes(base: BaseModel, target, source) -> None:
    """Refuses, naming the first layer that differs and both shapes, a network that cannot
    take the model's weights (the output layer's number of classes aside)."""
    source_layers, target_layers = _weighted_layers(source), _weighted_layers(target)
    hint = f"use the model's architecture in the config ({_architecture_hint(base)})"
    for name, weights in target_layers.items():
        if name not in source_layers:
            raise ConfigError(f"init_from: layer {name} of this config is not in {base.spec}; {hint}")
        theirs = source_layers[name]
        if len(theirs) != len(weights):
            raise ConfigError(
                f"init_from: layer {name} has {len(theirs)} weights in {base.spec} and {len(weights)} here; {hint}"
            )
        for mine, other in zip(weights, theirs):
            a, b = mine.shape, other.shape
            if name == OUTPUT_LAYER:
                a, b = a[:-1], b[:-1]
            if a != b:
                raise ConfigError(
                    f"init_from: layer {name} has shape {tuple(other.shape)} in {base.spec} and "
                    f"{tuple(mine.shape)} in this config; {hint}"
                )
    for name in source_layers:
        if name not in target_layers:
            raise ConfigError(f"init_from: layer {name} of {base.spec} is not in this config; {hint}")


def load_base_model(base: BaseModel, key: str = "init_from"):
    """The model's reading network, with its weights (``key``: the config key naming it)."""
    try:
        return build_network(base.params, str(base.weights), rnn_dropout=0.0)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{key}: cannot load the weights {base.weights}: {e}") from None


def freeze_layers(model, freeze: str) -> list[str]:
    """Sets the layers ``freeze`` names (``none``, ``norm``, ``cnn``, ``cnn+rnn``) to not trainable;
    Keras runs the batch normalisation of a non-trainable layer in inference mode.

    Returns:
        The names of the frozen layers.
    """
    if freeze == "norm":
        blocks = [layer for layer in model.layers if layer.name.startswith("conv_block_") and layer.bn is not None]
        for block in blocks:
            block.bn.trainable = False
        return [f"{block.name}/{block.bn.name}" for block in blocks]
    prefixes = FROZEN_PREFIXES[freeze]
    frozen = [layer for layer in model.layers if prefixes and layer.name.startswith(prefixes)]
    for layer in frozen:
        layer.trainable = False
    return [layer.name for layer in frozen]


class StartingPoint:
    """What a run started ``init_from`` a model needs, checked before any work.

    Args:
        params: the run's parameters (the data's alphabet in ``lookup_alphabet_file``).

    Raises:
        ConfigError: no model at ``init_from``, alphabets that ``alphabet_resize`` does not
            allow to differ, or an architecture whose shapes differ from the model's.
    """

    def __init__(self, params: Params):
        self.base = find_base_model(params.init_from)
        self.plan = plan_alphabet(
            self.base.params.alphabet, params.alphabet, params.alphabet_resize, str(params.lookup_alphabet_file)
        )
        self.source = load_base_model(self.base)
        check_shapes(self.base, build_network(params, rnn_dropout=0.0), self.source)

    @property
    def alphabet(self) -> Alphabet:
        """The run's alphabet."""
        return Alphabet.from_lookup(self.plan.lookup)

    def apply(self, model) -> None:
        """Loads the model's weights into the run's network."""
        copy_weights(self.source, model, self.plan.rows)
        logger.info(
            "Starting from %s (%s): %d units kept, %d new, %d dropped",
            self.base.spec,
            self.base.weights,
            sum(row is not None for row in self.plan.rows) - 1,
            len(self.plan.new_units),
            len(self.plan.dropped_units),
        )

    def language_model(self, params: Params) -> tuple[Params, CharNgram | None]:
        """The model's language model for a run that reads with one (``lm_weight`` above 0, which
        ``config.inherit_architecture`` takes from the model where the config sets no ``lm_*``
        key) and trains none of its own (``lm_order`` 0). Its n-gram counts in the model's codes:
        where the run's alphabet is not the model's code for code, the run reads greedily
        (``params`` with ``lm_weight`` 0) and the log says how to train one."""
        lm = load_lm(self.base.weights.parent) if params.lm_weight > 0 and not params.lm_order else None
        if lm is None:
            return params, None
        if self.plan.lookup != self.base.params.alphabet.lookup:
            logger.warning(
                "init_from %s: its language model is not kept, the run's alphabet is not the model's (%d new, "
                "%d dropped units); the exports read greedily: set lm_order (and lm_weight) to train one",
                self.base.spec, len(self.plan.new_units), len(self.plan.dropped_units),
            )  # fmt: skip
            return dataclasses.replace(params, lm_weight=0.0), None
        logger.info(
            "init_from %s: the exports read with the model's language model (%s, weight %g, length bonus %g); "
            "set lm_weight=0 to read greedily, or lm_order to train one on your data",
            self.base.spec, lm.describe(), params.lm_weight, params.lm_length_bonus,
        )  # fmt: skip
        return params, lm

    def report_new_units(self, train_csv: str | Path, params: Params) -> dict[str, int]:
        """Logs each new unit with the number of training lines that hold it, warning about
        those too rare to learn."""
        if not self.plan.new_units:
            return {}
        counts: collections.Counter[str] = collections.Counter()
        for _, _, label in read_csv_rows(train_csv, params.csv_delimiter):
            if label is not None:
                counts.update(set(split_label(label, params.string_split_delimiter)))
        found = {unit: counts[unit] for unit in self.plan.new_units}
        logger.info(
            "New units (training lines holding each): %s",
            ", ".join(f"{unit!r} {n}" for unit, n in found.items()),
        )
        rare = [unit for unit, n in found.items() if n < FEW_LINES]
        if rare:
            logger.warning(
                "%d new units are in fewer than %d training lines, too few to learn well: %s",
                len(rare),
                FEW_LINES,
                quoted_units(rare),
            )
        return found


__all__ = [
    "AlphabetPlan",
    "BaseModel",
    "StartingPoint",
    "find_base_model",
    "freeze_layers",
    "plan_alphabet",
    "quoted_units",
]
