"""fleetscope's own text path through CLIP computes what open_clip's ``CLIP.encode_text`` does.

``encode_text_embeds`` re-implements ``encode_text`` after its embedding lookup (so learned prompt
vectors can replace words); these tests compare the two on the shipped CLIP, so an open_clip
release that changes ``encode_text`` fails here instead of silently shifting the served models.
"""

from __future__ import annotations

import pytest
import torch

from models.checkpoints import SHIPPED_DIR, load_checkpoint
from models.clip_backbone import BaseClip, encode_text_embeds, tokenize, trim_prompts
from models.shipped import BACKBONE_FILE
from models.st_clip import STClip
from models.vocab import ASPECT_PHRASES, ASPECTS

# Of different lengths, down to a single word and up to one the context length (32) truncates.
SENTENCES = (
    "fog",
    "a wet road",
    "a car with hazard lights is standing on our side of the road",
    "a photo of " + " and ".join(["a truck"] * 12),
)


@pytest.fixture(scope="module")
def base_clip() -> BaseClip:
    model = load_checkpoint(SHIPPED_DIR / BACKBONE_FILE)
    assert isinstance(model, BaseClip) and model.meta["trained"]
    return model


def test_the_sentences_cover_short_long_and_truncated_prompts(base_clip: BaseClip) -> None:
    ids = tokenize(base_clip.arch, SENTENCES)
    eot_positions = ids.argmax(dim=-1).tolist()
    assert len(set(eot_positions)) == len(SENTENCES)
    assert eot_positions[-1] == ids.shape[1] - 1  # truncated: end-of-text in the last column


def test_encode_text_embeds_equals_open_clip_encode_text(base_clip: BaseClip) -> None:
    clip = base_clip.clip
    ids = tokenize(base_clip.arch, SENTENCES)
    with torch.inference_mode():
        expected = clip.encode_text(ids)
        ours = encode_text_embeds(clip, clip.token_embedding(ids), ids)
    torch.testing.assert_close(ours, expected)


def test_trimmed_prompts_give_the_same_features_as_full_length_ones(base_clip: BaseClip) -> None:
    clip = base_clip.clip
    ids = tokenize(base_clip.arch, SENTENCES[:3])
    trimmed = trim_prompts(clip, ids)
    assert trimmed.shape[1] < ids.shape[1]
    with torch.inference_mode():
        expected = clip.encode_text(ids)
        ours = encode_text_embeds(clip, clip.token_embedding(trimmed), trimmed)
    torch.testing.assert_close(ours, expected)


def test_st_clip_prompts_with_the_placeholder_words_as_context_are_open_clip_text_features(
    base_clip: BaseClip,
) -> None:
    # ST-CLIP's whole text path (placeholder substitution, trimming, pooling) on the shipped backbone:
    # learned context equal to the embedding of the word "X" must give CLIP's features of "X X X X ...".
    clip = base_clip.clip
    st = STClip(clip, base_clip.arch, base_clip.image_cfg, condition="none").eval()
    x_id = int(tokenize(base_clip.arch, ["X"])[0, 1])
    with torch.no_grad():
        st.prompt_ctx.copy_(clip.token_embedding.weight[x_id].expand_as(st.prompt_ctx))
    prompts = [f"X X X X {ASPECT_PHRASES[a][c]}." for a, classes in ASPECTS.items() for c in classes]
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(clip.encode_text(tokenize(base_clip.arch, prompts)), dim=-1)
        ours = st.class_embeddings(None)[0]
    torch.testing.assert_close(ours, expected)
