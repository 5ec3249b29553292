"""Freezing the pre-trained backbone: no gradients, and norms/dropout kept in eval mode during training.

LR-TK0 trains only the tokens (and the distillation temperature); the paper's Table 5 ablation also
fine-tunes the last 4 vision blocks at 1/100 of the learning rate. :func:`freeze_backbone` does both and
returns the unfrozen parameters for their own optimizer group. Lightning switches the whole
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
