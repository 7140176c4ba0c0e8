"""The real CLI with images: `chat --image` (repeatable) and `--mmproj`, the real Gemma 3 270M
model and the tiny projector of tests/vision_files.py, through libmtmd in the worker."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import hearth
from tests.vision_files import IMAGE_TOKENS, write_png, write_tiny_mmproj


def test_chat_with_images_then_text_reuses_the_cache(data_dir: Path, gemma_path: Path,
                                                     tmp_path: Path) -> None:
    mmproj = write_tiny_mmproj(tmp_path / "mmproj-tiny-f16.gguf")
    a = write_png(tmp_path / "a.png", color=(200, 0, 0))
    b = write_png(tmp_path / "b.png", width=20, height=60, color=(0, 0, 200))
    first = json.loads(hearth(data_dir, "chat", "--model", str(gemma_path), "--mmproj",
                              str(mmproj), "--image", str(a), "--image", str(b),
                              "--temperature", "0", "--max-tokens", "8", "--json",
                              "Compare these pictures. " + "Look closely. " * 90).stdout)
    assert first["state"] == "done" and first["completion_tokens"]
    assert first["prompt_tokens"] > 2 * (IMAGE_TOKENS + 2)  # both images are in the prompt
    # The pair is kept: the next run loads the projector with the model by itself, and the
    # chat's KV state saved when the first run's worker shut down (images included) is reused.
    second = json.loads(hearth(data_dir, "chat", "--continue", "--temperature", "0",
                               "--max-tokens", "4", "--json", "Which is darker?").stdout)
    assert second["prompt_tokens"] > first["prompt_tokens"] + first["completion_tokens"]
    assert second["cached_tokens"] >= first["prompt_tokens"] + first["completion_tokens"] - 1
    images = sorted(p.name for p in (data_dir / "images").iterdir())
    assert len(images) == 2 and all(name.endswith(".png") for name in images)
    markdown = hearth(data_dir, "history", "export", str(first["conversation_id"])).stdout
    assert markdown.count("](data:image/png;base64,") == 2


def test_images_need_a_vision_model(data_dir: Path, gemma_path: Path, tmp_path: Path) -> None:
    result = hearth(data_dir, "chat", "--model", str(gemma_path), "--image",
                    str(write_png(tmp_path / "p.png")), "Look", check=False)
    assert result.returncode != 0
    assert "cannot see images" in result.stderr and "Traceback" not in result.stderr
    bad = hearth(data_dir, "chat", "--model", str(gemma_path), "--mmproj", str(gemma_path),
                 "Hi", check=False)
    assert bad.returncode != 0 and "not a vision projector" in bad.stderr
