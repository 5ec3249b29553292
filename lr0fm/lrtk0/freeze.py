"""Freezing the pre-trained backbone: no gradients, and norms/dropout kept in eval mode during training.

LR-TK0 trains only the tokens (and the distillation temperature). The paper's Table 5 "not frozen"
ablation exists in two versions that disagree, both offered:

* ``paper-text`` -- the paper's words: "fine-tuning the last 4 blocks at 1/100 of the default learning
  rate" (:func:`freeze_backbone` with ``unfreeze_last_blocks=4``);
* ``authors-code`` -- the authors' ``CustomCLIP_lr.lock_image_tower(fine_tuning=True)``
  (``EVA/EVA-CLIP/rei/eva_clip/model_lr.py``): blocks ``>= floor(3N/4)`` (the last 3 of 12) and every
  vision parameter outside the blocks (patch and position embedding, class token, final norm, projection),
  at the EVA layer-decay learning rates (``training/optim.py``: 0.75 per layer from the top, no 1/100)
  (:func:`unfreeze_authors_code`).

Both return the unfrozen parameters for their own optimizer groups. Lightning switches the whole
LightningModule to train mode at every epoch start and after every validation loop, so the
LightningModule must re-apply the frozen modes after each switch, e.g.::

    def train(self, mode: bool = True):
        super().train(mode)
        apply_frozen_modes(self.backbone)
        return self
"""

from __future__ import annotations

from torch import nn

from lr0fm.lrtk0.towers import tower_layout

#: attribute set on modules that stay trainable (unfrozen blocks); it survives copies and pickling
TRAINABLE_MARK = "_lr0fm_trainable"


def freeze_backbone(
    model: nn.Module,
    *,
    visual: nn.Module | None = None,
    unfreeze_last_blocks: int = 0,
) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` except those of the last vision blocks, and set eval modes.

    Args:
        model: the whole image-text model (or :class:`~lr0fm.models.base.Backbone`); all of it is frozen.
        visual: the vision tower inside ``model`` whose blocks may be unfrozen; defaults to
            ``model.visual`` (open_clip ``CLIP`` and ``Backbone`` have one) or ``model`` itself.
        unfreeze_last_blocks: number of final vision transformer blocks left trainable (0: none).

    Returns:
        The parameters left trainable (empty when ``unfreeze_last_blocks == 0``), in module order.

    Raises:
        ValueError: ``unfreeze_last_blocks`` is negative or exceeds the tower's block count.

    """
    if unfreeze_last_blocks < 0:
        raise ValueError(f"unfreeze_last_blocks must be >= 0, got {unfreeze_last_blocks}")
    for module in model.modules():
        if getattr(module, TRAINABLE_MARK, False):
            delattr(module, TRAINABLE_MARK)
    model.requires_grad_(False)
    trainable: list[nn.Parameter] = []
    if unfreeze_last_blocks:
        blocks = tower_layout(visual or getattr(model, "visual", model)).blocks
        if unfreeze_last_blocks > len(blocks):
            raise ValueError(
                f"unfreeze_last_blocks={unfreeze_last_blocks} exceeds the vision tower's {len(blocks)} blocks"
            )
        for block in blocks[len(blocks) - unfreeze_last_blocks :]:
            block.requires_grad_(True)
            setattr(block, TRAINABLE_MARK, True)
            trainable += list(block.parameters())
    apply_frozen_modes(model)
    return trainable


#: parameter names of the embedding stem (layer 0 of EVA's layer decay)
_STEM_NAMES = ("patch_embed", "conv1", "cls_token", "class_embedding", "pos_embed", "positional_embedding", "reg_token")


def unfreeze_authors_code(
    model: nn.Module, *, visual: nn.Module | None = None, layer_decay: float = 0.75
) -> list[tuple[str, nn.Parameter, float]]:
    """Unfreeze the vision tower as the authors' code does; call after :func:`freeze_backbone`.

    Trainable: blocks ``i >= floor(3N/4)`` and every vision-tower parameter outside the blocks. Learning-rate
    scale of each, as EVA's layer decay: ``layer_decay ** (N + 1 - layer)`` with layer 0 for the stem
    (patch/position embedding, class token), ``i + 1`` for block ``i`` and ``N + 1`` (scale 1) for the rest.

    Args:
        model: the whole image-text model (or :class:`~lr0fm.models.base.Backbone`).
        visual: the vision tower (default ``model.visual``).
        layer_decay: the decay per layer (the authors' ``--visual-ld 0.75``).

    Returns:
        ``(name, parameter, lr_scale)`` of every unfrozen parameter (names relative to the tower).

    """
    visual = visual or getattr(model, "visual", model)
    blocks = tower_layout(visual).blocks
    num_blocks = len(blocks)
    first = num_blocks * 3 // 4
    block_of = {id(p): i for i, block in enumerate(blocks) for p in block.parameters()}
    unfrozen = []
    for name, param in visual.named_parameters():
        if name.startswith("lr_tokens."):
            continue
        block = block_of.get(id(param))
        if block is not None:
            if block < first:
                continue
            layer = block + 1
        else:
            layer = 0 if any(part in name for part in _STEM_NAMES) else num_blocks + 1
        param.requires_grad_(True)
        unfrozen.append((name, param, layer_decay ** (num_blocks + 1 - layer)))
    for block in blocks[first:]:
        setattr(block, TRAINABLE_MARK, True)
    apply_frozen_modes(model)
    return unfrozen


def apply_frozen_modes(model: nn.Module) -> None:
    """Put every frozen module of ``model`` in eval mode, leaving unfrozen blocks as they are.

    Call it after each ``model.train()``: frozen norms, dropout and patch dropout then behave as at
    inference, so with tokens off the student computes exactly what the frozen teacher computes.
    """
    trainable_ids: set[int] = set()
    for module in model.modules():
        if getattr(module, TRAINABLE_MARK, False):
            trainable_ids.update(id(sub) for sub in module.modules())
    for module in model.modules():
        if id(module) not in trainable_ids:
            module.training = False
