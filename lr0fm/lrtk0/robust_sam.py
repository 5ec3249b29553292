"""The paper's Table 4 "RobustSAM" baseline: RobustSAM's (Chen et al., CVPR 2024) robust parts on a frozen ViT.

RobustSAM makes a frozen segmentation model robust to degraded images with a robust output token and
anti-degradation feature modules, trained so that the degraded image's outputs match the clear image's. The
LR0.FM authors adapted it to zero-shot classification in ``EVAVisionTransformer_Robust_SAM``
(``EVA/EVA-CLIP/rei/eva_clip/eva_vit_model.py``, modules in ``EVA/EVA-CLIP/rei/eva_clip/robust_lr.py``, trained
by ``train_one_epoch_lr19`` in ``EVA/EVA-CLIP/rei/training/train.py``). The frozen tower gets:

* **robust token** (their ``custom_robust_token``): replaces the class token at the tower's input (it gets the
  class token's position embedding), so it is what the tower pools;
* **token head** (their AOTG: ``TokenBlock`` = two instance norms over the features, ``Linear-ReLU-Linear``,
  then ``robust_mlp``, a 3-layer MLP): applied to the pooled feature (the final-norm output at the class
  position) before the tower's projection, i.e. ``proj(robust_mlp(token_block(norm(x)[:, 0]))``;
* **AMFG feature blocks** (their ``FirstLayerFeatureBlock`` / ``LastLayerFeatureBlock``): each maps a patch-token
  grid (the output of block 0, and the last block's output through the final norm) to a ``width/8``-channel map
  at 4x the grid by a selective-kernel conv with channel attention (``DNCBlock_combined``), a Fourier-magnitude
  conv (``FGMBlock``), a 3x3 conv and two transposed convs; their sum is the "robust features".

With the parts on, the tower embeds the degraded (LR) image; with them off it is the frozen teacher, whose
"clear" robust features skip the anti-degradation convs (only the two transposed convs run, as theirs with
``clear=True``). The loss (:func:`lr0fm.lrtk0.loss.robust_sam_loss`) matches the LR robust features and
normalised embeddings to the teacher's HR ones. The feature blocks only shape training: they never reach the
embedding, so an export (:mod:`lr0fm.lrtk0.export`) holds the robust token and the token head alone.

All sizes follow the tower's width as theirs (``transformer_dim = embed_dim``). Where lr0fm differs: the parts
hook into an unmodified tower (open_clip and timm ViTs with a class token) instead of a forked EVA forward; the
token head acts on the tower's pooled feature, which for class-token pooling is their site exactly; the FFT of
``FGMBlock`` runs in fp32 (half-precision FFTs are limited to powers of two); their ``.squeeze()`` of the token
(which also drops a batch of 1) is not copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from lr0fm.lrtk0.attachment import AttachedTokens, init_tokens_
from lr0fm.lrtk0.towers import TowerError, TowerLayout
from lr0fm.models.base import Backbone

#: tower kinds whose pooled feature and final norm RobustSAM knows how to reach
SUPPORTED_TOWERS = ("open_clip", "timm")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map (theirs, from detectron2/ConvNeXt)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each position's channel vector, then scale and shift per channel."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Selector(nn.Module):
    """Attention weights of the two selective-kernel branches on a 4x4 grid, upsampled (theirs: ``Selector``)."""

    def __init__(self, channels: int, reduction: int = 16, grid: int = 4) -> None:
        super().__init__()
        self.grid = grid
        inner = channels * grid * grid
        self.avg_pool = nn.AdaptiveAvgPool2d((grid, grid))
        self.fc = nn.Sequential(nn.Linear(inner, inner // reduction, bias=False), nn.ReLU(inplace=True))
        self.att_conv1 = nn.Linear(inner // reduction, inner)
        self.att_conv2 = nn.Linear(inner // reduction, inner)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two branch weights ``[B, C, H, W]`` (softmax over the branches)."""
        b, c, h, w = x.shape
        y = self.fc(self.avg_pool(x).reshape(b, -1))
        att = torch.stack([self.att_conv1(y), self.att_conv2(y)]).view(2, b, c, self.grid, self.grid).softmax(0)
        return F.interpolate(att[0], size=(h, w), mode="nearest"), F.interpolate(att[1], size=(h, w), mode="nearest")


class SelectiveConv(nn.Module):
    """Two 3x3 convs on batch- and instance-normalised input, mixed by :class:`Selector` (theirs, ``first=False``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.selector = Selector(channels, reduction=reduction)
        self.IN = nn.InstanceNorm2d(channels)
        self.BN = nn.BatchNorm2d(channels)
        self.relu = nn.LeakyReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Selective-kernel mix of the BN and IN branches."""
        out1 = self.conv1(self.relu(self.BN(x)))
        out2 = self.conv2(self.relu(self.IN(x)))
        att1, att2 = self.selector(out1 + out2)
        return out1 * att1 + out2 * att2


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel gating (theirs: ``CABlock``)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.excitation = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled per channel by the gate of its spatial mean."""
        return x * self.excitation(x.mean((2, 3)))[:, :, None, None]


class FourierMagnitudeConv(nn.Module):
    """A 1x1 conv on the FFT magnitude, phase kept (theirs: ``FGMBlock``); computed in fp32."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real part of the inverse FFT of the re-weighted magnitude with the original phase."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            spectrum = torch.fft.fft2(x.float(), dim=(-2, -1))
            magnitude = self.conv_layer(spectrum.abs())
            phase = spectrum.angle()
            rebuilt = torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase))
            return torch.fft.ifft2(rebuilt, dim=(-2, -1)).real


class FeatureBlock(nn.Module):
    """AMFG: a patch-token grid ``[B, C, h, w]`` -> robust features ``[B, C/8, 4h, 4w]``.

    Theirs: ``FirstLayerFeatureBlock(vit_dim=C, transformer_dim=C)`` and ``LastLayerFeatureBlock(C)``, which are
    the same module at ``vit_dim == transformer_dim``. With ``clear=True`` (the teacher's clear image) only
    the upsampling runs.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.selective = SelectiveConv(width)  # DNCBlock_combined.SEMBlock
        self.channel_attention = ChannelAttention(2 * width)  # DNCBlock_combined.channel_attention
        self.fourier = FourierMagnitudeConv(2 * width)  # FGMBlock
        self.conv_layer = nn.Conv2d(2 * width, width, kernel_size=3, padding=1)
        self.upsample_layer = nn.Sequential(
            nn.ConvTranspose2d(width, width, kernel_size=2, stride=2),
            LayerNorm2d(width),
            nn.GELU(),
            nn.ConvTranspose2d(width, width // 8, kernel_size=2, stride=2),
        )

    def forward(self, x: torch.Tensor, clear: bool = False) -> torch.Tensor:
        """Robust features of one grid; the anti-degradation convs only for a degraded input."""
        if not clear:
            x = self.channel_attention(torch.cat([x, self.selective(x)], dim=1))
            x = self.conv_layer(self.fourier(x).to(x.dtype))
        return self.upsample_layer(x)


class TokenHead(nn.Module):
    """AOTG on the pooled feature: their ``TokenBlock`` (two instance norms, MLP) then ``robust_mlp`` (3 layers)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.IN_layer_I = nn.InstanceNorm1d(1)
        self.IN_layer_II = nn.InstanceNorm1d(1)
        self.token_mlp = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.robust_mlp = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` -> ``[B, C]``."""
        x = self.IN_layer_II(self.IN_layer_I(x.unsqueeze(1))).squeeze(1)
        return self.robust_mlp(self.token_mlp(x))


def _final_norm(layout: TowerLayout) -> nn.Module:
    """The norm the tower applies to its last block's tokens (open_clip ``ln_post``, timm ``norm``)."""
    return layout.tower.ln_post if layout.kind == "open_clip" else layout.tower.norm


def _check_tower(layout: TowerLayout) -> None:
    tower = layout.tower
    if layout.kind not in SUPPORTED_TOWERS:
        raise TowerError(
            f"RobustSAM supports {', '.join(SUPPORTED_TOWERS)} vision towers, not {layout.kind} "
            f"({layout.tower_class}); train LR tokens (model.method: lr_tokens) on it instead"
        )
    if layout.kind == "open_clip":
        if getattr(tower, "attn_pool", None) is not None or tower.pool_type != "tok":
            raise TowerError(
                f"RobustSAM needs a class-token-pooled tower, but {layout.tower_class} pools with "
                f"pool_type={tower.pool_type!r}{' and an attentional pooler' if tower.attn_pool is not None else ''}"
            )
    elif getattr(tower, "cls_token", None) is None or layout.pre_norm is None:
        raise TowerError(
            f"RobustSAM replaces the class token, but the timm tower {layout.tower_class} has "
            f"{'no class token' if getattr(tower, 'cls_token', None) is None else 'no norm_pre module'}"
        )
    if layout.width % 8:
        raise TowerError(f"RobustSAM's feature maps have width/8 channels: width {layout.width} is not a multiple of 8")


class RobustSAM(AttachedTokens):
    """RobustSAM's robust token, token head and AMFG feature blocks hooked into a frozen ViT vision tower.

    The module's ``state_dict`` holds ``robust_token`` (``[width]``), ``token_head.*`` and, with
    ``feature_blocks``, ``first_features.*`` / ``last_features.*`` (with BatchNorm statistics). The
    feature blocks read the tokens recorded inside :meth:`recording`; see the module docstring.

    Args:
        visual: an open_clip ``VisionTransformer`` or a timm ViT/Eva with a class token (or a
            :class:`~lr0fm.models.base.Backbone` around one).
        init: init of the robust token (``"trunc_normal"``, theirs, ``"normal"`` or ``"zeros"``).
        std: its standard deviation (theirs: 0.02).
        feature_blocks: build the AMFG blocks (training); an export is loaded without them.
        attach: register the hooks now (else call :meth:`attach`).

    Raises:
        TowerError: an unsupported tower (see :data:`SUPPORTED_TOWERS`), a tower pooling something else
            than its class token, or a width that is not a multiple of 8.
        ValueError: unknown ``init``.

    """

    method = "robust_sam"

    def __init__(
        self,
        visual: nn.Module | Backbone,
        *,
        init: str = "trunc_normal",
        std: float = 0.02,
        feature_blocks: bool = True,
        attach: bool = True,
    ) -> None:
        super().__init__(visual, attach=attach)
        _check_tower(self.layout)
        self.init = init
        self.std = std
        width = self.layout.width
        token = torch.empty(width)
        init_tokens_(token, init, std)
        self.robust_token = nn.Parameter(token)
        self.token_head = TokenHead(width)
        self.first_features = FeatureBlock(width) if feature_blocks else None
        self.last_features = FeatureBlock(width) if feature_blocks else None
        self._record: dict[str, torch.Tensor] | None = None
        self._finish_init()

    # -- export ------------------------------------------------------------------------------------------

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors that act at inference: the robust token and the token head (no feature blocks)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("first_features.", "last_features."))}

    def config(self) -> dict[str, Any]:
        """JSON-serialisable construction options, tower layout and exported tensor shapes."""
        shapes = {name: list(t.shape) for name, t in self.export_tensors().items()}
        return {"init": self.init, "std": self.std, **self.layout.signature(), "shapes": shapes}

    @classmethod
    def from_config(cls, visual: nn.Module | Backbone, config: dict[str, Any]) -> RobustSAM:
        """The inference parts (no feature blocks) for an export's config, not attached."""
        return cls(visual, init=config["init"], std=config["std"], feature_blocks=False, attach=False)

    # -- hooks -------------------------------------------------------------------------------------------

    def _register_hooks(self) -> list[RemovableHandle]:
        layout = self.layout
        start = layout.pre_norm if layout.pre_norm is not None else layout.blocks[0]
        head_site = layout.tower.ln_post if layout.kind == "open_clip" else layout.tower.fc_norm
        return [
            start.register_forward_pre_hook(self._token_hook),
            layout.blocks[0].register_forward_hook(self._first_hook),
            layout.blocks[-1].register_forward_hook(self._last_hook),
            head_site.register_forward_hook(self._head_hook),
        ]

    def _token_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self.enabled:
            return None
        x = args[0]  # [B, L, C]: class token + position-embedded patches (before the pre-block norm)
        token = self.robust_token.to(x.dtype)
        position = self.layout.class_position_embedding()
        if position is not None:
            token = token + position.to(x.dtype)
        token = token.expand(x.shape[0], 1, -1)
        return (torch.cat([token, x[:, 1:]], dim=1), *args[1:])

    def _patch_grid(self, output: torch.Tensor, where: str) -> torch.Tensor:
        x = output if self.layout.batch_first else output.transpose(0, 1)
        (grid_h, grid_w), prefix = self.layout.grid, self.layout.num_prefix_tokens
        if x.shape[1] != prefix + grid_h * grid_w:
            raise TowerError(
                f"RobustSAM expects {prefix + grid_h * grid_w} tokens ({prefix} prefix + grid {grid_h}x{grid_w}) "
                f"at the {where}, got {tuple(output.shape)}; run the tower at its native input size"
            )
        return x[:, prefix:]

    def _first_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        if self._record is not None:
            self._record["first"] = self._patch_grid(output, "output of block 0")

    def _last_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        if self._record is not None:
            # the final norm's own forward, not its __call__: open_clip's ln_post also carries the head hook
            tokens = self._patch_grid(output, "output of the last block")
            self._record["last"] = _final_norm(self.layout).forward(tokens)

    def _head_hook(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor | None:
        if not self.enabled:
            return None
        if output.ndim == 2:  # the pooled feature (timm fc_norm; open_clip ln_post with final_ln_after_pool)
            return self.token_head(output).to(output.dtype)
        # open_clip ln_post on the [B, L, C] sequence (its transformer hands back batch-first): pooled = x[:, 0]
        head = self.token_head(output[:, 0]).to(output.dtype)
        return torch.cat([head.unsqueeze(1), output[:, 1:]], dim=1)

    # -- robust features ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def recording(self) -> Iterator[dict[str, torch.Tensor]]:
        """Context whose tower forwards record the patch tokens the feature blocks read (teacher or student)."""
        self._record = {}
        try:
            yield self._record
        finally:
            self._record = None

    def robust_features(self, record: dict[str, torch.Tensor], *, clear: bool) -> torch.Tensor:
        """Sum of the two feature blocks' maps ``[B, width/8, 4 gh, 4 gw]`` for a :meth:`recording`.

        Args:
            record: what :meth:`recording` yielded, after one tower forward.
            clear: the teacher's clear image (upsampling only), else the degraded one.

        Raises:
            ValueError: built without feature blocks (an export), or nothing was recorded.

        """
        if self.first_features is None or self.last_features is None:
            raise ValueError("these RobustSAM parts were loaded from an export, which has no feature blocks")
        if set(record) != {"first", "last"}:
            raise ValueError("nothing was recorded: run the tower inside `with robust.recording() as record:`")
        (grid_h, grid_w) = self.layout.grid

        def grid(tokens: torch.Tensor) -> torch.Tensor:
            return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, grid_h, grid_w)

        return self.first_features(grid(record["first"]), clear) + self.last_features(grid(record["last"]), clear)
