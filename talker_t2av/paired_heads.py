"""The speech and the motion head's decoders run as one network over the pair.

The two flow-matching heads' decoders (``LocalDiT.decoder``) have the same shape: the backbone's width,
``head_layers`` blocks, ``head_heads`` heads. At batch 1 a pass of one of them is ~150 kernels of a few
microseconds each, and a generated patch runs both heads through all their Euler steps: most of a patch's
kernels. Stacked along a leading pair dimension, each of the two heads' matmuls becomes one ``bmm`` over the
pair and the attention one call over both heads' rows, so a step of both heads issues the kernels of one.

    pair = PairedDecoders(speech_decoder, motion_decoder)      # stacked copies of both heads' weights
    h = pair(torch.cat([speech_tokens, motion_tokens]))        # (2N, L, D): rows [speech | motion]
    pair.refresh()                                             # copy the heads' current weights in again

The paired network is the decoders' module tree, built anew, with each ``nn.Linear`` and ``RMSNorm`` swapped for a
paired one (``TransformerBlock``'s code runs unchanged over 2N rows), so it computes what the two decoders compute,
each on its half of the rows. The stacked weights are copies (the released parameters stay as they are);
``generate`` refreshes them at each call, so a model trained between calls (validation samples) is never read
stale. Each block's two norms feed linears alone, so their scales are multiplied into those linears' stacked
weights (``fold_scale``): the paired norm is then the bare normalisation, one kernel instead of two. Shapes: 2 the
pair, N rows per head, L tokens, D width.
"""

import torch
from torch import nn

from engine.layers import RMSNorm, RotaryEmbedding
from engine.layers.block import TransformerBlock
from engine.layers.norm import rms_norm


class PairedLinear(nn.Module):
    """Two linears of one shape as one batched matmul: the first half of the rows through the first."""

    def __init__(self, first: nn.Linear, second: nn.Linear):
        super().__init__()
        self.sources = (first, second)  # a tuple: not submodules, so not in this module's state
        self.input_scales = None  # the norms whose scales this linear's columns take (``fold_scale``)
        self.register_buffer("weight", torch.stack([first.weight.detach(), second.weight.detach()]))  # (2, out, in)
        bias = None if first.bias is None else torch.stack([first.bias.detach(), second.bias.detach()])[:, None]
        self.register_buffer("bias", bias)  # (2, 1, out) or None

    def refresh(self) -> None:
        for i, source in enumerate(self.sources):
            if self.input_scales is None:
                self.weight[i].copy_(source.weight)
            else:  # W (s * x) = (W diag(s)) x
                torch.mul(source.weight, self.input_scales[i].scale, out=self.weight[i])
            if self.bias is not None:
                self.bias[i, 0].copy_(source.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (2N, ..., in) -> (2N, ..., out)
        pair = x.reshape(2, -1, x.shape[-1])  # (2, N..., in); bmm and baddbmm autocast as a linear does
        out = torch.bmm(pair, self.weight.mT) if self.bias is None else torch.baddbmm(self.bias, pair, self.weight.mT)
        return out.view(*x.shape[:-1], -1)


class PairedRMSNorm(nn.Module):
    """Two RMSNorms of one width: each half of the rows scaled by its own norm's weights."""

    def __init__(self, first: RMSNorm, second: RMSNorm):
        super().__init__()
        self.sources, self.dim, self.eps = (first, second), first.dim, first.eps
        scale = None if first.scale is None else torch.stack([first.scale.detach(), second.scale.detach()])[:, None]
        self.register_buffer("scale", scale)  # (2, 1, D) or None; None once folded into the linears it feeds

    def refresh(self) -> None:
        if self.scale is not None:
            for i, source in enumerate(self.sources):
                self.scale[i, 0].copy_(source.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (2N, ..., D) -> (2N, ..., D)
        out = rms_norm(x.reshape(2, -1, self.dim), None, self.eps)  # (2, N..., D)
        if self.scale is not None:
            out = out * self.scale.to(out.dtype)
        return out.view_as(x)


def fold_scale(norm: PairedRMSNorm, *linears: PairedLinear) -> None:
    """The norm's scales multiplied into the columns of the linears it alone feeds, at each refresh: one kernel a
    norm fewer (the bare normalisation is one kernel, the scale another, where rows of the pair differ)."""
    if norm.scale is None:
        return
    for linear in linears:
        linear.input_scales = norm.sources
    norm.scale = None
    for linear in linears:
        linear.refresh()


def _settings(module: nn.Module) -> dict:
    """A module's own plain settings (heads, eps, ...): what two modules of one type may still differ in."""
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training"
            and (v is None or isinstance(v, (bool, int, float, str)))}


def pairing_problem(first: nn.Module, second: nn.Module) -> str | None:
    """Why two module trees cannot run as one pair (linears and norms of one shape at the same places, no
    other weights, the same settings), or None."""
    if type(first) is not type(second):
        return f"{type(first).__name__} against {type(second).__name__}"
    if isinstance(first, nn.Linear):
        same = first.weight.shape == second.weight.shape and (first.bias is None) == (second.bias is None)
        return None if same else f"linears {first} and {second}"
    if isinstance(first, RMSNorm):
        same = first.dim == second.dim and first.eps == second.eps and (first.scale is None) == (second.scale is None)
        return None if same else f"norms {first} and {second}"
    if isinstance(first, RotaryEmbedding):  # a table of positions, no weights: shared
        same = first.w.shape == second.w.shape and first.base == second.base
        return None if same else "rotary tables"
    if first._parameters or first._buffers:
        return f"{type(first).__name__} holds weights of its own"
    if first._modules.keys() != second._modules.keys() or _settings(first) != _settings(second):
        return f"{type(first).__name__}s differ in their settings or submodules"
    problems = (pairing_problem(child, second._modules[name]) for name, child in first._modules.items())
    return next((p for p in problems if p is not None), None)


def _paired(first: nn.Module, second: nn.Module) -> nn.Module:
    """``first``'s module tree with each Linear / RMSNorm paired with ``second``'s at the same place."""
    if isinstance(first, nn.Linear):
        return PairedLinear(first, second)
    if isinstance(first, RMSNorm):
        return PairedRMSNorm(first, second)
    if isinstance(first, RotaryEmbedding):
        return first
    # a new instance with the module's own settings (heads, ...) and its children paired: nothing else of
    # ``first`` (a forward patched for activation checkpointing, a compiled call, hooks) would run the pair
    pair = type(first).__new__(type(first))
    nn.Module.__init__(pair)
    vars(pair).update(_settings(first))
    for name, child in first._modules.items():
        pair.add_module(name, _paired(child, second._modules[name]))
    return pair


class PairedDecoders:
    """Two decoders of one shape as one: called on rows [first's N | second's N] (2N, L, D) -> (2N, L, D)."""

    def __init__(self, first: nn.Module, second: nn.Module):
        problem = pairing_problem(first, second)
        if problem is not None:
            raise ValueError(f"the two decoders cannot run as a pair: {problem}")
        with torch.no_grad():
            self.network = _paired(first, second)
            for block in self.network.modules():  # each block's two norms feed linears alone: their scales fold in
                if isinstance(block, TransformerBlock):
                    fold_scale(block.norm1, block.attn.qkv)
                    fold_scale(block.norm2, block.mlp.fc1, block.mlp.fc2)

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the decoders' current weights into the stacked ones (in place: captured graphs read them there)."""
        for module in self.network.modules():
            if isinstance(module, (PairedLinear, PairedRMSNorm)):
                module.refresh()

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.network(h)
