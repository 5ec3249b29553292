"""LR tokens, VPT prompts, backbone freezing and tokens-only export on tiny random ViT towers."""

from __future__ import annotations

import copy
import json
import os
import pickle

import pytest
import timm
import torch
import torch.nn.functional as F
from open_clip.transform import PreprocessCfg
from open_clip.transformer import Transformer, VisionTransformer
from safetensors.torch import save_file
from torch import nn

from lr0fm.lrtk0 import (
    LRTokens,
    TowerError,
    VisualPromptTokens,
    apply_frozen_modes,
    freeze_backbone,
    load_lr_tokens,
    read_lr_tokens_config,
    save_lr_tokens,
    tower_layout,
)
from lr0fm.models.base import Backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WIDTH, DEPTH = 32, 2


def open_clip_tower(pool_type: str = "tok", batch_first: bool = True) -> VisionTransformer:
    torch.manual_seed(0)
    tower = VisionTransformer(
        image_size=32,
        patch_size=8,
        width=WIDTH,
        layers=DEPTH,
        heads=2,
        mlp_ratio=2.0,
        output_dim=16,
        pool_type=pool_type,
    )
    if not batch_first:
        tower.transformer = Transformer(WIDTH, DEPTH, 2, mlp_ratio=2.0, batch_first=False)
    return tower.eval()


def eva_tower() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "eva02_tiny_patch14_224",
        pretrained=False,
        img_size=56,
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=2,
        num_classes=0,
    ).eval()


def siglip_tower(dynamic_img_size: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(
        "vit_base_patch16_siglip_224",
        pretrained=False,
        img_size=32,
        embed_dim=WIDTH,
        depth=DEPTH,
        num_heads=2,
        num_classes=0,
        dynamic_img_size=dynamic_img_size,
    ).eval()


class TowerBackbone(Backbone):
    """A bare vision tower as a Backbone (spec and tower only)."""

    def __init__(self, spec: str, tower: nn.Module) -> None:
        super().__init__(spec, PreprocessCfg(size=32, mean=(0.5,) * 3, std=(0.5,) * 3), list)
        self.tower = tower

    @property
    def visual(self) -> nn.Module:
        return self.tower

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.tower(images)

    def encode_text(self, tokens: list) -> torch.Tensor:
        return torch.zeros(len(tokens))


class Wrapped(nn.Module):
    """Stands in for open_clip's ``TimmModel``: the timm tower is ``trunk``."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


TOWERS = {
    "open_clip": (open_clip_tower, 32),
    "open_clip_avg_seq_first": (lambda: open_clip_tower("avg", batch_first=False), 32),
    "eva02": (eva_tower, 56),
    "siglip": (siglip_tower, 32),
    "timm_in_wrapper": (lambda: Wrapped(siglip_tower()), 32),
}


def images(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", TOWERS)
def test_tokens_off_or_zero_equal_untouched_backbone(name: str) -> None:
    build, size = TOWERS[name]
    tower, x = build(), images(size)
    with torch.no_grad():
        reference = tower(x)
        zero = LRTokens(tower, init="zeros")
        assert torch.equal(tower(x), reference)
        zero.detach()
        tokens = LRTokens(tower)  # trunc-normal: changes the output ...
        assert not torch.allclose(tower(x), reference)
        with tokens.disabled():  # ... unless switched off (the teacher)
            assert torch.equal(tower(x), reference)
        assert tokens.enabled
        tokens.detach()
        assert torch.equal(tower(x), reference)


def test_open_clip_tokens_match_explicit_forward() -> None:
    tower, x = open_clip_tower(), images(32)
    tokens = LRTokens(tower)
    hooked = tower(x)
    with torch.no_grad(), tokens.disabled():  # add the same tokens by hand
        patches = tower.conv1(x).flatten(2).transpose(1, 2) + tokens.embed_token  # before cls + pos
        seq = torch.cat([tower.class_embedding.expand(2, 1, -1), patches], dim=1) + tower.positional_embedding
        seq = tower.ln_pre(seq)
        for block, token in zip(tower.transformer.resblocks, tokens.block_tokens):
            seq = block(seq + F.pad(token, (0, 0, 1, 0)))  # class token untouched
        explicit = tower._pool(seq)[0] @ tower.proj
    torch.testing.assert_close(hooked, explicit)


def test_timm_tokens_match_explicit_forward() -> None:
    tower, x = siglip_tower(), images(32)
    tokens = LRTokens(tower)
    hooked = tower(x)
    with torch.no_grad(), tokens.disabled():
        seq = tower.norm_pre(tower._pos_embed(tower.patch_embed(x) + tokens.embed_token))  # before pos
        for block, token in zip(tower.blocks, tokens.block_tokens):
            seq = block(seq + token)  # SigLIP has no prefix tokens
        explicit = tower.forward_head(tower.norm(seq))
    torch.testing.assert_close(hooked, explicit)
    dynamic = siglip_tower(dynamic_img_size=True)  # patch_embed output is [B, gh, gw, C]
    LRTokens(dynamic).load_state_dict(tokens.state_dict())
    torch.testing.assert_close(dynamic(x), hooked)


def test_seq_first_transformer_gets_the_same_tokens() -> None:
    batch_first, seq_first, x = open_clip_tower(), open_clip_tower(batch_first=False), images(32)
    seq_first.load_state_dict(batch_first.state_dict())
    first = LRTokens(batch_first)
    second = LRTokens(seq_first)
    second.load_state_dict(first.state_dict())
    torch.testing.assert_close(seq_first(x), batch_first(x))


@pytest.mark.parametrize("name", ["open_clip", "eva02", "siglip"])
def test_only_tokens_receive_gradients(name: str) -> None:
    build, size = TOWERS[name]
    tower = build()
    assert freeze_backbone(tower) == []
    tokens = LRTokens(tower)
    tower.train()
    apply_frozen_modes(tower)
    assert not any(module.training for module in tower.modules())
    out = tower(images(size))
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is None and not p.requires_grad for p in tower.parameters())
    grads = [p.grad for p in tokens.parameters()]
    assert len(grads) == 2 and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert set(tokens.state_dict()) == {"embed_token", "block_tokens"}


def test_token_count_matches_paper_formula_for_vit_b16() -> None:
    tower = VisionTransformer(image_size=224, patch_size=16, width=768, layers=12, heads=12, mlp_ratio=4.0)
    tokens = LRTokens(tower, init="zeros", attach=False)
    assert tokens.num_tokens == 196 * 13
    assert tokens.num_parameters == 196 * 13 * 768
    assert tuple(tokens.block_tokens.shape) == (12, 196, 768)
    assert tuple(tokens.embed_token.shape) == (196, 768)
    late = LRTokens(tower, start_block=4, init="zeros", attach=False)  # paper Fig. 15: none after patchify
    assert late.embed_token is None and late.num_tokens == 196 * 8


def test_start_block_leaves_earlier_blocks_untouched() -> None:
    tower, x = open_clip_tower(), images(32)
    seen: list[torch.Tensor] = []
    tower.transformer.resblocks[0].register_forward_hook(lambda m, a, out: seen.append(out))
    tower(x)
    tokens = LRTokens(tower, start_block=1)
    tower(x)
    assert tokens.embed_token is None and tokens.block_tokens.shape[0] == DEPTH - 1
    assert torch.equal(seen[0], seen[1])
    with pytest.raises(ValueError, match="start_block=3"):
        LRTokens(tower, start_block=3)


@pytest.mark.parametrize("name", ["open_clip_avg_seq_first", "eva02", "siglip"])
def test_vpt_prompts_are_concatenated_and_removed_before_pooling(name: str) -> None:
    build, size = TOWERS[name]
    tower, x = build(), images(size)
    layout = tower_layout(tower)
    seq_dim = 1 if layout.batch_first else 0
    reference = tower(x)
    lengths: list[int] = []
    layout.blocks[-1].register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[seq_dim]))
    freeze_backbone(tower)
    prompts = VisualPromptTokens(tower, num_prompts=5)
    out = tower(x)
    assert out.shape == reference.shape and not torch.allclose(out, reference)
    assert lengths == [layout.num_prefix_tokens + layout.num_spatial_tokens + 5]
    (out * torch.randn_like(out)).sum().backward()
    assert prompts.prompts.grad.abs().sum() > 0
    assert all(p.grad is None for p in tower.parameters())
    with torch.no_grad(), prompts.disabled():
        assert torch.equal(tower(x), reference)


def test_vpt_prompts_sit_between_class_token_and_patches_with_its_position_embedding() -> None:
    # the authors' EVAVisionTransformer_VPT: [CLS, prompts + pos_embed[CLS], patches], RoPE skipped for the prompts
    tower, x = eva_tower(), images(56)
    prompts = VisualPromptTokens(tower, num_prompts=3)
    hooked = tower(x)
    with torch.no_grad(), prompts.disabled():
        seq, rope = tower._pos_embed(tower.patch_embed(x))
        extra = (prompts.prompts + tower.pos_embed[0, 0]).expand(2, -1, -1)
        seq = tower.norm_pre(torch.cat([seq[:, :1], extra, seq[:, 1:]], dim=1))
        half = rope.shape[-1] // 2
        identity = torch.cat([torch.zeros(3, half), torch.ones(3, half)], dim=-1)
        rope = torch.cat([identity, rope], dim=0)
        for block in tower.blocks:
            seq = block(seq, rope=rope)
        seq = torch.cat([seq[:, :1], seq[:, 4:]], dim=1)  # prompts dropped before the final norm and pooling
        explicit = tower.forward_head(tower.norm(seq))
    torch.testing.assert_close(hooked, explicit)
    clip_tower = open_clip_tower()
    clip_prompts = VisualPromptTokens(clip_tower, num_prompts=2)
    hooked = clip_tower(x[:, :, :32, :32])
    with torch.no_grad(), clip_prompts.disabled():
        patches = clip_tower.conv1(x[:, :, :32, :32]).flatten(2).transpose(1, 2)
        seq = torch.cat([clip_tower.class_embedding.expand(2, 1, -1), patches], dim=1) + clip_tower.positional_embedding
        extra = (clip_prompts.prompts + clip_tower.positional_embedding[0]).expand(2, -1, -1)
        seq = clip_tower.ln_pre(torch.cat([seq[:, :1], extra, seq[:, 1:]], dim=1))
        for block in clip_tower.transformer.resblocks:
            seq = block(seq)
        explicit = clip_tower._pool(torch.cat([seq[:, :1], seq[:, 3:]], dim=1))[0] @ clip_tower.proj
    torch.testing.assert_close(hooked, explicit)


def test_token_inits_of_the_authors_families() -> None:
    torch.manual_seed(0)
    tower = VisionTransformer(image_size=224, patch_size=16, width=64, layers=4, heads=2, mlp_ratio=2.0, output_dim=8)
    eva = LRTokens(tower, init="trunc_normal", std=0.02)
    assert eva.block_tokens.std().item() == pytest.approx(0.02, rel=0.05) and eva.block_tokens.abs().max() <= 2
    eva.detach()
    clip = LRTokens(tower, init="normal", std=0.02, embed_std=0.01)  # their OpenCLIP/MetaCLIP code
    assert clip.embed_token.std().item() == pytest.approx(0.01, rel=0.05)
    assert clip.block_tokens.std().item() == pytest.approx(0.02, rel=0.05)
    assert clip.config()["embed_std"] == 0.01


def test_unfreeze_as_the_authors_code_with_layer_decay() -> None:
    from lr0fm.lrtk0.freeze import unfreeze_authors_code

    torch.manual_seed(0)
    tower = VisionTransformer(image_size=32, patch_size=8, width=WIDTH, layers=4, heads=2, mlp_ratio=2.0, output_dim=16)
    freeze_backbone(tower)
    unfrozen = {name: scale for name, _, scale in unfreeze_authors_code(tower, visual=tower, layer_decay=0.5)}
    blocks = {name.split(".")[2] for name in unfrozen if name.startswith("transformer.resblocks.")}
    assert blocks == {"3"}  # blocks >= floor(3 * 4 / 4) = 3
    assert unfrozen["conv1.weight"] == unfrozen["positional_embedding"] == unfrozen["class_embedding"] == 0.5**5
    assert unfrozen["transformer.resblocks.3.ln_1.weight"] == 0.5 ** (4 - 3)
    assert unfrozen["proj"] == unfrozen["ln_post.weight"] == 1.0
    trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
    assert trainable == set(unfrozen)


def test_export_round_trip(tmp_path) -> None:
    tower, x = eva_tower(), images(56)
    tokens = LRTokens(tower, start_block=1)
    expected = tower(x).detach()
    path = save_lr_tokens(tmp_path / "tokens.safetensors", tokens, backbone_spec="EVA02-tiny:toy")
    config = read_lr_tokens_config(path)
    assert config["backbone_spec"] == "EVA02-tiny:toy" and config["tower"] == "timm"
    assert config["grid"] == [4, 4] and config["width"] == WIDTH and config["num_blocks"] == DEPTH
    assert config["shapes"] == {"block_tokens": [1, 16, WIDTH]} and config["start_block"] == 1
    fresh = eva_tower()
    loaded = load_lr_tokens(path, fresh, "EVA02-tiny:toy")
    assert torch.equal(loaded.block_tokens, tokens.block_tokens) and loaded.embed_token is None
    assert torch.equal(fresh(x), expected)


def test_export_rejects_other_backbones_and_shapes(tmp_path) -> None:
    path = save_lr_tokens(tmp_path / "t.safetensors", LRTokens(open_clip_tower()), backbone_spec="ViT-toy:a")
    with pytest.raises(TowerError, match="'ViT-toy:a'.*'ViT-toy:b'"):
        load_lr_tokens(path, open_clip_tower(), "ViT-toy:b")
    tower = open_clip_tower()
    backbone = TowerBackbone("ViT-toy:b", tower)
    with pytest.raises(TowerError, match="'ViT-toy:a'.*'ViT-toy:b'"):  # a Backbone brings its own spec
        load_lr_tokens(path, backbone)
    with pytest.raises(TowerError, match="tower: file 'open_clip' vs model 'timm'"):
        load_lr_tokens(path, siglip_tower())
    bigger = VisionTransformer(image_size=64, patch_size=8, width=WIDTH, layers=DEPTH, heads=2, mlp_ratio=2.0)
    with pytest.raises(TowerError, match=r"grid: file \[4, 4\] vs model \[8, 8\]"):
        load_lr_tokens(path, bigger)
    config = read_lr_tokens_config(path)
    bad = tmp_path / "bad.safetensors"  # right config, token tensor of another shape
    save_file(
        {"block_tokens": torch.zeros(2, 15, WIDTH), "embed_token": torch.zeros(16, WIDTH)},
        str(bad),
        metadata={"lr0fm_lr_tokens": json.dumps(config)},
    )
    with pytest.raises(TowerError, match="15"):
        load_lr_tokens(bad, open_clip_tower())
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    with pytest.raises(ValueError, match="save_lr_tokens"):
        read_lr_tokens_config(plain)


def test_wrong_input_size_and_unsupported_tower_are_clear_errors() -> None:
    tower = open_clip_tower()
    LRTokens(tower)
    with pytest.raises(TowerError, match="16 spatial tokens .*grid 4x4"):
        tower(images(40))
    with pytest.raises(TowerError, match="'Linear'"):
        LRTokens(nn.Linear(3, 3))


def test_unfreeze_last_blocks_and_frozen_modes() -> None:
    tower = eva_tower()
    trainable = freeze_backbone(tower, unfreeze_last_blocks=1)
    assert {id(p) for p in trainable} == {id(p) for p in tower.blocks[1].parameters()}
    assert sum(p.requires_grad for p in tower.parameters()) == len(trainable)
    tower.train()
    apply_frozen_modes(tower)
    assert all(m.training for m in tower.blocks[1].modules())
    assert not tower.training and not tower.blocks[0].training and not tower.norm.training
    with pytest.raises(ValueError, match="exceeds the vision tower's 2 blocks"):
        freeze_backbone(tower, unfreeze_last_blocks=3)


def pickle_round_trip(module: nn.Module) -> nn.Module:
    return pickle.loads(pickle.dumps(module))


@pytest.mark.parametrize("clone", [copy.deepcopy, pickle_round_trip])
def test_copy_of_model_with_tokens_is_independent(clone) -> None:
    tower, x = open_clip_tower(), images(32)
    holder = nn.ModuleDict({"visual": tower, "tokens": LRTokens(tower)})
    twin = clone(holder)
    assert torch.equal(twin["visual"](x), tower(x))
    with torch.no_grad():
        twin["tokens"].block_tokens.zero_()
    assert not torch.equal(twin["visual"](x), tower(x))
    twin["tokens"].detach()
    with holder["tokens"].disabled():
        assert torch.equal(twin["visual"](x), tower(x))
