"""The reference easy-VQA networks, one per interaction family.

Every model exposes the same TorchScript interface so that the Counterpoint loader can
treat them uniformly (see docs/reference_models.md and docs/models.md):

- ``forward(inputs)`` -> (B, C) logits, reading ``inputs["text"]`` (LongTensor (B, L))
  and/or ``inputs["image"]`` (FloatTensor (B, 3, H, W));
- ``encode_text(tokens)`` / ``encode_image(image)`` -> (B, D) encodings, (B, 0) for a
  modality the model does not read;
- ``fuse(encodings)`` -> (B, C) logits with
  ``forward(x) == fuse({"text": encode_text(x_t), "image": encode_image(x_v)})``.

forward is always written as fuse(encode(...)) so that identity holds by construction
rather than by keeping two code paths in sync.

This module must stay free of Django imports: it is scripted and run by plain PyTorch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Conv trunk widths; small enough that each package stays far below 5 MB.
_WIDTHS = (16, 32, 64)


class ConvTrunk(nn.Module):
    """conv-BN-ReLU-maxpool blocks producing a spatial feature map.

    BatchNorm + ReLU + max pooling is what lets the fused models escape the text prior
    (the issue measured a conv + flatten + tanh encoder stuck at ~82.5% on yes/no).
    64x64 input -> (B, out_channels, 8, 8); the last 3x3 conv runs at 8x8 without
    pooling so each of the 64 regions sees ~38 px, enough to tell a corner from an arc.
    """

    def __init__(self, out_channels: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for width in _WIDTHS:
            layers += [
                nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_ch = width
        layers += [
            nn.Conv2d(in_ch, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        ]
        self.body = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, image: Tensor) -> Tensor:
        return self.body(image)


class ImageVectorEncoder(nn.Module):
    """ConvTrunk + global max pooling -> (B, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(64)
        self.proj = nn.Linear(64, dim)

    def forward(self, image: Tensor) -> Tensor:
        feats = self.trunk(image)
        pooled = torch.amax(feats, dim=(2, 3))
        return self.proj(pooled)


class TextVectorEncoder(nn.Module):
    """Token + position embeddings, masked mean over real tokens, MLP -> (B, dim).

    Position embeddings give the mean a little word-order information; easy-VQA
    questions are templates, so this is plenty.
    """

    def __init__(self, vocab_size: int, max_length: int, dim: int, pad_id: int = 0) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, 64, padding_idx=pad_id)
        self.pos = nn.Parameter(torch.zeros(max_length, 64))
        nn.init.normal_(self.pos, std=0.02)
        self.mlp = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, dim))

    def forward(self, tokens: Tensor) -> Tensor:
        mask = (tokens != self.pad_id).to(torch.float32).unsqueeze(-1)
        length = tokens.size(1)
        x = (self.embed(tokens) + self.pos[:length].unsqueeze(0)) * mask
        # clamp: an all-padding row (empty question) must not divide by zero
        mean = x.sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.mlp(mean)


def _empty(batch: int, like: Tensor) -> Tensor:
    return torch.zeros(batch, 0, dtype=torch.float32, device=like.device)


class TextOnly(nn.Module):
    """Question-only baseline: measures the language prior of the dataset."""

    def __init__(self, vocab_size: int, max_length: int, num_labels: int, dim: int = 64) -> None:
        super().__init__()
        self.text = TextVectorEncoder(vocab_size, max_length, dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, num_labels))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse({"text": self.encode_text(inputs["text"])})

    @torch.jit.export
    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.text(tokens)

    @torch.jit.export
    def encode_image(self, image: Tensor) -> Tensor:
        return _empty(image.size(0), image)

    @torch.jit.export
    def fuse(self, encodings: dict[str, Tensor]) -> Tensor:
        return self.head(encodings["text"])


class ImageOnly(nn.Module):
    """Image-only baseline: can answer colour/shape questions, guesses on yes/no."""

    def __init__(self, num_labels: int, dim: int = 64) -> None:
        super().__init__()
        self.image = ImageVectorEncoder(dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(dim, num_labels))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse({"image": self.encode_image(inputs["image"])})

    @torch.jit.export
    def encode_text(self, tokens: Tensor) -> Tensor:
        return _empty(tokens.size(0), tokens)

    @torch.jit.export
    def encode_image(self, image: Tensor) -> Tensor:
        return self.image(image)

    @torch.jit.export
    def fuse(self, encodings: dict[str, Tensor]) -> Tensor:
        return self.head(encodings["image"])


class Additive(nn.Module):
    """Late fusion by summing unimodal logits: f(t, v) = g(t) + h(v) exactly.

    The encodings ARE the unimodal logits, so fuse is a bare sum with no shared
    parameters; EMAP on this model must give back f itself.
    """

    def __init__(self, vocab_size: int, max_length: int, num_labels: int, dim: int = 64) -> None:
        super().__init__()
        self.text = TextVectorEncoder(vocab_size, max_length, dim)
        self.text_head = nn.Sequential(nn.ReLU(), nn.Linear(dim, num_labels))
        self.image = ImageVectorEncoder(dim)
        self.image_head = nn.Sequential(nn.ReLU(), nn.Linear(dim, num_labels))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse(
            {
                "text": self.encode_text(inputs["text"]),
                "image": self.encode_image(inputs["image"]),
            }
        )

    @torch.jit.export
    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.text_head(self.text(tokens))

    @torch.jit.export
    def encode_image(self, image: Tensor) -> Tensor:
        return self.image_head(self.image(image))

    @torch.jit.export
    def fuse(self, encodings: dict[str, Tensor]) -> Tensor:
        return encodings["text"] + encodings["image"]


class Multiplicative(nn.Module):
    """Element-wise product of same-size encodings followed by an MLP head."""

    def __init__(self, vocab_size: int, max_length: int, num_labels: int, dim: int = 64) -> None:
        super().__init__()
        self.text = TextVectorEncoder(vocab_size, max_length, dim)
        self.image = ImageVectorEncoder(dim)
        self.head = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, num_labels))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse(
            {
                "text": self.encode_text(inputs["text"]),
                "image": self.encode_image(inputs["image"]),
            }
        )

    @torch.jit.export
    def encode_text(self, tokens: Tensor) -> Tensor:
        return self.text(tokens)

    @torch.jit.export
    def encode_image(self, image: Tensor) -> Tensor:
        return self.image(image)

    @torch.jit.export
    def fuse(self, encodings: dict[str, Tensor]) -> Tensor:
        return self.head(encodings["text"] * encodings["image"])


class CrossAttention(nn.Module):
    """Question tokens attend over an 8x8 grid of image regions with ``heads`` heads.

    Encodings are flattened so fuse still takes one (B, D) tensor per modality:
    - text: (B, L * (dim + 1)), row-major (token, channel); channel ``dim`` of each
      token is 1.0 for a real token and 0.0 for padding. The mask travels inside the
      encoding because fuse never sees the token ids, and EMAP mixes text encodings of
      one example with image encodings of another.
    - image: (B, R * dim), row-major (region, channel), regions in raster order
      (row, column) of the 8x8 grid.

    Multi-head attention: query, key and value are split into ``heads`` slices of
    ``dim // heads`` channels; head h attends with its own softmax over regions and
    writes only channels ``[h * head_dim, (h + 1) * head_dim)`` of the attended vector.
    There is no output projection mixing the heads, so ``fuse_with_head_mask`` with
    head h's mask entry at 0 gives exactly the logits of the same network whose head h
    reads zero values: a masked head contributes nothing.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        num_labels: int,
        dim: int = 64,
        pad_id: int = 0,
        heads: int = 4,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.pad_id = pad_id
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads
        self.max_length = max_length
        self.grid = 8
        self.num_regions = self.grid * self.grid
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.pos = nn.Parameter(torch.zeros(max_length, dim))
        nn.init.normal_(self.pos, std=0.02)
        # Each token also sees the question summary, so e.g. "circle" in a negated
        # question ("is no circle present?") can be told apart from a plain one.
        self.token_mix = nn.Linear(2 * dim, dim)
        self.trunk = ConvTrunk(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.head = nn.Sequential(nn.Linear(2 * dim, 128), nn.ReLU(), nn.Linear(128, num_labels))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse(
            {
                "text": self.encode_text(inputs["text"]),
                "image": self.encode_image(inputs["image"]),
            }
        )

    def _tokens(self, tokens: Tensor) -> Tensor:
        """(B, L) ids -> (B, L, dim + 1) token features with the mask as last channel."""
        mask = (tokens != self.pad_id).to(torch.float32).unsqueeze(-1)
        length = tokens.size(1)
        x = (self.embed(tokens) + self.pos[:length].unsqueeze(0)) * mask
        summary = x.sum(dim=1, keepdim=True) / mask.sum(dim=1, keepdim=True).clamp(min=1.0)
        mixed = torch.tanh(self.token_mix(torch.cat([x, summary.expand_as(x)], dim=-1)))
        return torch.cat([mixed * mask, mask], dim=-1)

    def _regions(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, R, dim), regions in raster order."""
        feats = self.trunk(image)
        feats = nn.functional.adaptive_max_pool2d(feats, (self.grid, self.grid))
        return feats.flatten(2).transpose(1, 2)

    def _split(self, x: Tensor) -> Tensor:
        """(B, N, dim) -> (B, heads, N, head_dim)."""
        return x.view(x.size(0), x.size(1), self.heads, self.head_dim).transpose(1, 2)

    def _attend(self, tok: Tensor, regions: Tensor) -> Tensor:
        """(B, heads, L, R): per head, a softmax over regions for every token."""
        q = self._split(self.query(tok))
        k = self._split(self.key(regions))
        scores = torch.matmul(q, k.transpose(2, 3))
        return torch.softmax(scores / math.sqrt(self.head_dim), dim=-1)

    @torch.jit.export
    def encode_text(self, tokens: Tensor) -> Tensor:
        return self._tokens(tokens).flatten(1)

    @torch.jit.export
    def encode_image(self, image: Tensor) -> Tensor:
        return self._regions(image).flatten(1)

    @torch.jit.export
    def fuse(self, encodings: dict[str, Tensor]) -> Tensor:
        ones = torch.ones(self.heads, dtype=torch.float32, device=encodings["text"].device)
        return self.fuse_with_head_mask(encodings, ones)

    @torch.jit.export
    def fuse_with_head_mask(self, encodings: dict[str, Tensor], head_mask: Tensor) -> Tensor:
        """fuse with each head's output scaled by ``head_mask``: shape (heads,) for the
        whole batch or (B, heads) per example; 1.0 keeps a head, 0.0 removes it."""
        text = encodings["text"]
        batch = text.size(0)
        tok_all = text.view(batch, -1, self.dim + 1)
        length = tok_all.size(1)
        tok = tok_all[:, :, : self.dim]
        mask = tok_all[:, :, self.dim :]
        regions = encodings["image"].view(batch, self.num_regions, self.dim)
        attn = self._attend(tok, regions)
        per_head = torch.matmul(attn, self._split(self.value(regions)))  # (B, H, L, hd)
        if head_mask.dim() == 1:
            scale = head_mask.view(1, self.heads, 1, 1)
        else:
            scale = head_mask.view(batch, self.heads, 1, 1)
        per_head = per_head * scale.to(per_head.dtype)
        attended = per_head.transpose(1, 2).reshape(batch, length, self.dim)
        count = mask.sum(dim=1).clamp(min=1.0)
        # Token-wise product is the interaction; the plain question mean tells the head
        # which kind of answer (yes/no, colour, shape) is wanted.
        joint = (tok * attended * mask).sum(dim=1) / count
        question = (tok * mask).sum(dim=1) / count
        return self.head(torch.cat([joint, question], dim=-1))

    @torch.jit.export
    def forward_with_head_mask(self, inputs: dict[str, Tensor], head_mask: Tensor) -> Tensor:
        """forward(inputs) with ``head_mask`` as in fuse_with_head_mask."""
        return self.fuse_with_head_mask(
            {
                "text": self.encode_text(inputs["text"]),
                "image": self.encode_image(inputs["image"]),
            },
            head_mask,
        )

    @torch.jit.export
    def attention_heads(self, inputs: dict[str, Tensor]) -> Tensor:
        """(B, heads, L, R) weights of each head and question token over the image regions.

        Every row (padding tokens included) is a softmax over regions and sums to 1;
        padding rows carry no meaning and are ignored by fuse.
        """
        tok = self._tokens(inputs["text"])[:, :, : self.dim]
        return self._attend(tok, self._regions(inputs["image"]))

    @torch.jit.export
    def attention(self, inputs: dict[str, Tensor]) -> Tensor:
        """(B, L, R): attention_heads averaged over the heads (rows still sum to 1)."""
        return self.attention_heads(inputs).mean(dim=1)


def build(
    name: str, vocab_size: int, max_length: int, num_labels: int, *, heads: int = 1
) -> nn.Module:
    """Construct the network for a reference model name (`heads`: cross-attention only)."""
    if name == "easyvqa-text-only":
        return TextOnly(vocab_size, max_length, num_labels)
    if name == "easyvqa-image-only":
        return ImageOnly(num_labels)
    if name == "easyvqa-additive":
        return Additive(vocab_size, max_length, num_labels)
    if name == "easyvqa-multiplicative":
        return Multiplicative(vocab_size, max_length, num_labels)
    if name == "easyvqa-cross-attention":
        return CrossAttention(vocab_size, max_length, num_labels, heads=heads)
    raise KeyError(f"unknown reference model {name!r}")
