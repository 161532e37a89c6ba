"""Output size and weight sizes of the model.json shapes exporters write."""

from __future__ import annotations

from typing import Any

import pytest

from channelmodel.migrate.errors import ImportRefused
from channelmodel.migrate.topology import output_units
from channelmodel.migrate.weights import spec_bytes


def dense(units: int, name: str = "dense") -> dict[str, Any]:
    return {"class_name": "Dense", "config": {"name": name, "units": units}}


def layer(class_name: str, name: str, inbound: str | None = None) -> dict[str, Any]:
    nodes = [[[inbound, 0, 0, {}]]] if inbound else []
    return {
        "class_name": class_name,
        "name": name,
        "config": {"name": name},
        "inbound_nodes": nodes,
    }


def functional(layers: list[dict[str, Any]], output: str) -> dict[str, Any]:
    return {
        "class_name": "Model",
        "config": {"name": "model", "layers": layers, "output_layers": [[output, 0, 0]]},
    }


def test_tm_2019_nested_sequentials_with_list_configs() -> None:
    topology = {
        "class_name": "Sequential",
        "config": [
            {"class_name": "Sequential", "config": [{"class_name": "Model", "config": {}}]},
            {"class_name": "Sequential", "config": [dense(100, "d1"), dense(7, "d2")]},
        ],
    }
    assert output_units(topology) == 7


def test_keras_saved_form_with_dict_configs_and_trailing_activation() -> None:
    """tf_keras / tensorflowjs 4 write {model_config: {..., config: {name, layers}}}."""
    head = {
        "class_name": "Sequential",
        "config": {"name": "head", "layers": [dense(100), dense(5)]},
    }
    topology = {
        "keras_version": "2.21.0",
        "model_config": {
            "class_name": "Sequential",
            "config": {
                "name": "sequential",
                "layers": [head, {"class_name": "Activation", "config": {"name": "softmax"}}],
            },
        },
    }
    assert output_units(topology) == 5


def test_functional_model_is_followed_back_from_its_output() -> None:
    layers = [
        layer("InputLayer", "input"),
        {**layer("Dense", "logits", "input"), "config": {"name": "logits", "units": 4}},
        layer("Softmax", "probs", "logits"),
    ]
    assert output_units({"model_config": functional(layers, "probs")}) == 4


@pytest.mark.parametrize(
    "last",
    [
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "pool"}},
        {"class_name": "Conv2D", "config": {"name": "conv", "filters": 3}},
    ],
)
def test_output_not_from_a_dense_layer_is_refused(last: dict[str, Any]) -> None:
    topology = {"class_name": "Sequential", "config": [dense(10), last]}
    with pytest.raises(ImportRefused, match="cannot tell the output size"):
        output_units(topology)


def test_multi_output_models_are_refused() -> None:
    model = functional([layer("Dense", "a")], "a")
    model["config"]["output_layers"].append(["b", 0, 0])
    with pytest.raises(ImportRefused, match="only single-output models"):
        output_units(model)


@pytest.mark.parametrize(
    ("spec", "size"),
    [
        ({"name": "k", "shape": [1280, 100], "dtype": "float32"}, 512_000),
        ({"name": "k", "shape": [3], "dtype": "int32"}, 12),
        ({"name": "k", "shape": [], "dtype": "float32"}, 4),  # a scalar
        (
            {
                "name": "k",
                "shape": [10, 10],
                "dtype": "float32",
                "quantization": {"dtype": "uint8"},
            },
            100,
        ),
        (
            {"name": "k", "shape": [10], "dtype": "float32", "quantization": {"dtype": "float16"}},
            20,
        ),
    ],
)
def test_weight_bytes(spec: dict[str, Any], size: int) -> None:
    assert spec_bytes(spec) == size


def test_string_weights_are_refused() -> None:
    with pytest.raises(ImportRefused, match="unsupported dtype 'string'"):
        spec_bytes({"name": "vocab", "shape": [3], "dtype": "string"})
