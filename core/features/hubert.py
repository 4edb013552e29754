"""HuBERT-base network (the ContentVec "legacy" / RVC ``hubert_base.pt`` model) in plain PyTorch.

Module and parameter names follow the fairseq state dict one to one, so a fairseq checkpoint's
``model`` entry loads with ``load_state_dict(strict=True)`` once the two training-only tensors
(``mask_emb``, ``label_embs_concat``) are dropped. Only inference is implemented: no masking,
no dropout, no layer drop. Loading, validation and the public API live in
:mod:`core.features.contentvec`; this module is imported only when an encoder is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class HubertConfig:
    """The hyperparameters that shape the network (fairseq ``cfg['model']`` names in comments)."""

    conv_layers: tuple[tuple[int, int, int], ...] = (
        ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    )  # conv_feature_layers: (channels, kernel, stride)
    conv_bias: bool = False  # conv_bias
    embed_dim: int = 768  # encoder_embed_dim
    ffn_dim: int = 3072  # encoder_ffn_embed_dim
    num_layers: int = 12  # encoder_layers
    num_heads: int = 12  # encoder_attention_heads
    pos_conv_kernel: int = 128  # conv_pos
    pos_conv_groups: int = 16  # conv_pos_groups
    final_dim: int = 256  # final_dim (times the number of label sets when untie_final_proj)
    normalize_input: bool = False  # task.normalize

    @property
    def receptive_field(self) -> int:
        """Samples needed for one output frame (400 for HuBERT-base)."""
        field = 1
        for _, kernel, stride in reversed(self.conv_layers):
            field = (field - 1) * stride + kernel
        return field

    @property
    def hop(self) -> int:
        """Samples between output frames (320 for HuBERT-base)."""
        hop = 1
        for _, _, stride in self.conv_layers:
            hop *= stride
        return hop

    def num_frames(self, num_samples: int) -> int:
        """Output frames for ``num_samples`` input samples (0 when shorter than the receptive field)."""
        n = num_samples
        for _, kernel, stride in self.conv_layers:
            n = (n - kernel) // stride + 1 if n >= kernel else 0
        return max(n, 0)


class ConvFeatureExtractor(nn.Module):
    """Seven strided 1-D convs; GroupNorm (one group per channel) after the first only ("default" mode)."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        layers = []
        in_ch = 1
        for i, (ch, kernel, stride) in enumerate(cfg.conv_layers):
            # Index 1 is fairseq's (parameter-free) Dropout; keeping the slot keeps the key names.
            parts: list[nn.Module] = [nn.Conv1d(in_ch, ch, kernel, stride=stride, bias=cfg.conv_bias), nn.Identity()]
            if i == 0:
                parts.append(nn.GroupNorm(ch, ch, eps=1e-5, affine=True))
            parts.append(nn.GELU())
            layers.append(nn.Sequential(*parts))
            in_ch = ch
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, N] -> [B, C, T]
        x = wav.unsqueeze(1)
        for i, layer in enumerate(self.conv_layers):
            if i == 0:
                conv, _, norm, act = layer
                # fairseq computes this GroupNorm in float32 even in half-precision models.
                y = conv(x)
                w, b = norm.weight.float(), norm.bias.float()
                x = act(F.group_norm(y.float(), norm.num_groups, w, b, norm.eps).to(y.dtype))
            else:
                x = layer(x)
        return x


class PositionalConv(nn.Module):
    """Grouped conv over time with old-style weight norm (``weight_g`` [1, 1, K] over dim 2)."""

    def __init__(self, dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.groups = groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))
        if not self.weight_v.is_meta:  # on meta, normal_ would import torch's reference ops (~2 s, once)
            nn.init.normal_(self.weight_v, std=0.02)

    def weight(self) -> torch.Tensor:
        # One norm per kernel tap, over all output and input channels (weight_norm with dim=2).
        norm = self.weight_v.pow(2).sum(dim=(0, 1), keepdim=True).sqrt()
        return self.weight_v * (self.weight_g / norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T] -> [B, C, T]
        y = F.conv1d(x, self.weight(), self.bias, padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:
            y = y[:, :, :-1]  # an even kernel with padding K/2 gives one frame too many: drop the last
        return F.gelu(y)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        # Declared in fairseq's order (k, v, q, out) so state_dict() lists the keys the same way.
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, C]
        b, t, c = x.shape
        h = self.num_heads

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, c // h).transpose(1, 2)

        # Default scale 1/sqrt(head_dim) applied to q after its bias, as fairseq does.
        out = F.scaled_dot_product_attention(heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (``layer_norm_first=False``)."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=1e-5)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        # "pos_conv.0" is the key prefix fairseq's Sequential(conv, SamePad, GELU) produces.
        self.pos_conv = nn.ModuleList([PositionalConv(cfg.embed_dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)])
        self.layer_norm = nn.LayerNorm(cfg.embed_dim, eps=1e-5)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.embed_dim, cfg.ffn_dim, cfg.num_heads) for _ in range(cfg.num_layers)
        )

    def forward(self, x: torch.Tensor, output_layer: int) -> torch.Tensor:
        x = x + self.pos_conv[0](x.transpose(1, 2)).transpose(1, 2)
        x = self.layer_norm(x)
        # fairseq pads T to an even length with masked frames here; a masked key never changes the
        # real frames, so with a single unpadded sequence the padding is skipped.
        for layer in self.layers[:output_layer]:
            x = layer(x)
        return x


class HubertBase(nn.Module):
    """HuBERT with fairseq's parameter names; :meth:`forward` is ``extract_features`` (+ optional final_proj)."""

    def __init__(self, cfg: HubertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_extractor = ConvFeatureExtractor(cfg)
        conv_dim = cfg.conv_layers[-1][0]
        self.layer_norm = nn.LayerNorm(conv_dim, eps=1e-5)
        self.post_extract_proj = nn.Linear(conv_dim, cfg.embed_dim) if conv_dim != cfg.embed_dim else None
        self.encoder = TransformerEncoder(cfg)
        self.final_proj = nn.Linear(cfg.embed_dim, cfg.final_dim)

    def project_features(self, wav: torch.Tensor) -> torch.Tensor:
        """Conv features -> LayerNorm -> projection: [B, N] -> [B, T, embed_dim] (before pos_conv)."""
        x = self.layer_norm(self.feature_extractor(wav).transpose(1, 2))
        return self.post_extract_proj(x) if self.post_extract_proj is not None else x

    def forward(self, wav: torch.Tensor, output_layer: int, final_proj: bool = False) -> torch.Tensor:
        """Output of transformer layer ``output_layer`` (1-based, as fairseq): [B, N] -> [B, T, C]."""
        if self.cfg.normalize_input:
            wav = F.layer_norm(wav, wav.shape[-1:])
        x = self.encoder(self.project_features(wav), output_layer)
        return self.final_proj(x) if final_proj else x
