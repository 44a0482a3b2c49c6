"""examples/lightning_llm_tokens.py: a Lightning module trains a tiny GPT-2 on the tokens of highest excess loss,
and the selector's state survives a Lightning checkpoint."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("pytorch_lightning")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_llm_tokens.py"


def load():
    spec = importlib.util.spec_from_file_location("lightning_llm_tokens", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_with_selection_and_checkpoints_the_selector(tmp_path):
    example = load()
    reference, model = example.main(steps=8, rows=64, length=24)
    selector = model.selector
    assert selector.steps == 8 and 0.6 < selector.stats()["keep_ratio"] < 0.8  # warm-up of 0 steps: 8 // 10
    trainer = example.fit(model, example.glosses(64, 24), 10, default_root_dir=str(tmp_path))  # 10 more steps
    path = tmp_path / "saved.ckpt"
    trainer.save_checkpoint(path)
    assert selector.steps == 18
    fresh = example.TinyLM(259, 24, example.TokenSelector(keep=0.6, rule="excess_loss"), model.reference)
    example.fit(fresh, example.glosses(64, 24), 12, ckpt_path=str(path), enable_checkpointing=False)
    assert fresh.selector.steps == 20  # 18 restored, then steps 11 and 12 of the resumed Lightning run
