"""The TF.js 1.3.1 compatibility rewrite of a tf_keras topology (no TensorFlow needed)."""

from __future__ import annotations

import json

from channelmodel_trainer.export import make_tfjs1_compatible, metadata_json


def test_functional_becomes_model_and_unknown_keys_go_at_any_depth() -> None:
    topology = {
        "class_name": "Sequential",
        "config": {
            "layers": [
                {
                    "class_name": "Functional",
                    "module": "tf_keras.src.engine.functional",
                    "registered_name": "Functional",
                    "build_config": {"input_shape": [None, 224, 224, 3]},
                    "config": {
                        "name": "mobilenetv2_0.35_224",
                        "layers": [{"class_name": "Conv2D", "module": "x"}],
                    },
                }
            ]
        },
    }

    fixed = make_tfjs1_compatible(topology)

    inner = fixed["config"]["layers"][0]
    assert inner == {
        "class_name": "Model",
        "config": {"name": "mobilenetv2_0.35_224", "layers": [{"class_name": "Conv2D"}]},
    }
    assert topology["config"]["layers"][0]["class_name"] == "Functional"  # input untouched


def test_metadata_has_teachable_machine_fields_and_ours() -> None:
    metadata = json.loads(
        metadata_json(labels=["p2", "p1"], channel_id="c", version="1.2.3", metrics={"classes": 2})
    )
    assert set(metadata) == {
        "tfjsVersion",
        "tmVersion",
        "packageVersion",
        "packageName",
        "timeStamp",
        "userMetadata",
        "modelName",
        "labels",
        "imageSize",
    }
    assert metadata["labels"] == ["p2", "p1"]
    assert metadata["imageSize"] == 224
    assert metadata["userMetadata"] == {
        "version": "1.2.3",
        "channelId": "c",
        "metrics": {"classes": 2},
    }
    assert metadata["timeStamp"].endswith("Z")
