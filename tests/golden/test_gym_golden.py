"""Golden fingerprints of the safety gym, recorded before its word tables moved to package data.

Every train/test item of every kind and every ``builtin:gym-*`` behaviour set must stay byte-identical
(sha256 over a canonical JSON dump), and so must the training pools and the first sampled batches of
the quick preset. The quick build's tokenizer and weights are compared too, where the library
versions match the ones they were recorded with (bit-identity is promised per torch version and
thread count, not across versions).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path

import pytest
import tokenizers
import torch
import transformers

from advlab.data import gym
from advlab.data.behavior_loaders import load_behaviors
from advlab.models.gym_config import GymConfig
from advlab.models.gym_pools import build_pools, sample_example

ITEMS = {  # (kind, split) -> (count, sha256 of the items as JSON)
    ("harmful", "train"): (5744, "36d9d88917feff689a96e67aac57b99a61cb894a3e81a2207dbd57f171f0bc2d"),
    ("harmful", "test"): (1248, "280cdea66d3f5704d6be746cf4fa487ad711470d608af76b2381b219482df2ce"),
    ("harmless", "train"): (11008, "282326bf74a995aca4b8da4ab0ab12e0c384232ec0670218afdf9d764b28e1f4"),
    ("harmless", "test"): (2784, "a6b37dfca55488d320d21b1f06d1be7bc75d2e5f23ca31f0da863303cf7ebd92"),
    ("task", "train"): (7990, "da2dc7df639738f0ecedaf83d008c006c4e1bc7f484b7b6d1397515c3ef6d07e"),
    ("task", "test"): (1008, "12ab51318bfbd25e2a1129f7339376f4c1a4399975a55c89b9af9a05bea8fd7d"),
}
BEHAVIOR_SETS = {  # builtin name -> (count, sha256 of the Behaviors as JSON)
    "gym-harmful-test": (1248, "98d01a4589eeaa79f706d98c3f6a8da1a730067a56307b3109e897ec8315949e"),
    "gym-harmful-train": (5744, "7af0db981db3e8c6feff35656dff7c2b03d567b87340eb7f853921c4167ca8ee"),
    "gym-harmless-test": (2784, "e7af8bfa9d1223228681777028e69ff35876ceffe91107d5d1808d0ba0498fe4"),
    "gym-harmless-train": (11008, "56e0a5327ebf7a56cfcd1382d7f2c45b63774532e01d7383970d1394633bc55a"),
    "gym-tasks-test": (1008, "596b772c9b3da0cb1d4866fca972ef9c8484959ddd3a4cc61c85fb25afe81d14"),
    "gym-tasks-train": (7990, "db07c4705563e2320d1ff0cb4562b75d766efdb2734af8424cc3c3efed23c8c7"),
}
POOL_SIZES = {"harmful": 5744, "harmless": 11008, "task": 7990, "public_harmful": 0, "public_harmless": 0}
POOLS_SHA = "6e0480885d6f9f3f02cc2876fb3905dadf367806698a7f271c6ece2e86cf1734"
BATCHES_SHA = "37619a898153a4f80984864a8b35bf52a445b3a390431c85363df3e7e516c63f"  # 20 quick batches, seed 0
SURE_TARGETS_SHA = "8bca8490d20925994608d450729eead5203ae323e4f58f8929bd88948dc493c5"

# The quick build (seed 0), recorded with torch 2.13.0+cpu, tokenizers 0.23.3, transformers 5.24.0.
QUICK_VERSIONS = ("2.13.0+cpu", "0.23.3", "5.24.0")
QUICK_TOKENIZER_SHA = "d1ea51d5921a40165b0cd323e5d4a261ba478687b9b7500881de658d2c64fc27"
QUICK_WEIGHTS_SHA = "307ea93d71834a1024575ecbe00daac3a076536c24408da91d1ef11c2e718c78"


def _sha(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("kind", "split"), sorted(ITEMS))
def test_gym_items_unchanged(kind, split):
    items = [dataclasses.asdict(i) for i in gym.gym_items(kind, split)]
    assert (len(items), _sha(items)) == ITEMS[kind, split]


def test_behavior_sets_unchanged():
    assert sorted(gym.GYM_BEHAVIOR_SETS) == sorted(BEHAVIOR_SETS)
    for name, (n, digest) in BEHAVIOR_SETS.items():
        got = [dataclasses.asdict(b) for b in load_behaviors(f"builtin:{name}")]
        assert (len(got), _sha(got)) == (n, digest), name


def test_sure_targets_unchanged():
    prompts = [i.prompt for kind in ("harmful", "harmless", "task") for i in gym.gym_items(kind, "test")]
    assert _sha([gym.sure_target(p) for p in prompts]) == SURE_TARGETS_SHA


def test_training_pools_and_sampled_batches_unchanged():
    pools = build_pools()
    assert pools.sizes() == POOL_SIZES
    assert _sha(dataclasses.asdict(pools)) == POOLS_SHA
    cfg = GymConfig.quick_preset()
    rng = random.Random(0)
    batches = [[sample_example(pools, cfg, rng) for _ in range(cfg.batch_size)] for _ in range(20)]
    assert _sha(batches) == BATCHES_SHA


def test_quick_build_tokenizer_and_weights_unchanged(gym_dir):
    versions = (torch.__version__, tokenizers.__version__, transformers.__version__)
    if versions != QUICK_VERSIONS:
        pytest.skip(f"recorded with torch/tokenizers/transformers {QUICK_VERSIONS}, running {versions}")
    info = json.loads((gym_dir / "gym_build.json").read_text(encoding="utf-8"))
    if not (info["quick"] and info["seed"] == 0):
        pytest.skip("ADVLAB_TEST_GYM points at a build other than the quick seed-0 one")
    assert _file_sha(gym_dir / "tokenizer.json") == QUICK_TOKENIZER_SHA
    assert _file_sha(gym_dir / "model.safetensors") == QUICK_WEIGHTS_SHA
