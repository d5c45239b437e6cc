"""Week 2 hidden checks: the reference passes every check, and realistic wrong implementations fail them."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder import week02
from course_lib.demo import mistakes_module
from course_lib.notebooks import grade_id, is_solution_cell, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference

REF = load_reference("week02")


# Each check with the arguments its grade cell passes, taken from a module built like the reference.
def check_calls(module):
    return {
        "masks": lambda: week02.check_masks(module.causal_mask, module.padding_mask),
        "scaled_dot_product_attention": lambda: week02.check_scaled_dot_product_attention(
            module.scaled_dot_product_attention
        ),
        "multi_head_attention": lambda: week02.check_multi_head_attention(module.MultiHeadAttention),
        "sinusoidal_positional_encoding": lambda: week02.check_sinusoidal_positional_encoding(
            module.sinusoidal_positional_encoding
        ),
        "learned_positional_encoding": lambda: week02.check_learned_positional_encoding(
            module.LearnedPositionalEncoding
        ),
        "block": lambda: week02.check_block(module.Block, module.GPTConfig),
        "gpt_forward": lambda: week02.check_gpt_forward(module.GPT, module.GPTConfig),
        "gpt_causal": lambda: week02.check_gpt_causal(module.GPT, module.GPTConfig),
        "gpt_training": lambda: week02.check_gpt_training(module.GPT, module.GPTConfig),
    }


@pytest.mark.parametrize("name", list(check_calls(REF)))
def test_reference_passes_check(name):
    check_calls(REF)[name]()


def test_checks_keep_global_rng_state():
    state = torch.random.get_rng_state()
    week02.check_gpt_forward(REF.GPT, REF.GPTConfig)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_reference_checks_silent(capfd):
    # nbgrader scores a grade cell 0 when it writes to stderr, so a warning would cost a correct answer its points.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in check_calls(REF).values():
            call()
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------------
# Masks


def causal_mask_upper(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).triu()


def causal_mask_float(T, device=None):
    return torch.tril(torch.ones(T, T, device=device))


def causal_mask_no_diagonal(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril(-1)


def padding_mask_inverted(lengths, T):
    lengths = torch.as_tensor(lengths)
    if bool((lengths > T).any()):
        raise ValueError("length larger than T")
    return torch.arange(T, device=lengths.device)[None, :] >= lengths[:, None]


def padding_mask_off_by_one(lengths, T):
    lengths = torch.as_tensor(lengths)
    if bool((lengths > T).any()):
        raise ValueError("length larger than T")
    return torch.arange(T, device=lengths.device)[None, :] <= lengths[:, None]


def padding_mask_no_length_check(lengths, T):
    lengths = torch.as_tensor(lengths)
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


def padding_mask_long(lengths, T):
    lengths = torch.as_tensor(lengths)
    if bool((lengths > T).any()):
        raise ValueError("length larger than T")
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]).long()


WRONG_MASKS = {
    "causal mask above diagonal": (causal_mask_upper, REF.padding_mask),
    "causal mask float": (causal_mask_float, REF.padding_mask),
    "causal mask without diagonal": (causal_mask_no_diagonal, REF.padding_mask),
    "padding mask inverted": (REF.causal_mask, padding_mask_inverted),
    "padding mask off by one": (REF.causal_mask, padding_mask_off_by_one),
    "padding mask accepts long lengths": (REF.causal_mask, padding_mask_no_length_check),
    "padding mask integer dtype": (REF.causal_mask, padding_mask_long),
}


@pytest.mark.parametrize("causal_mask, padding_mask", WRONG_MASKS.values(), ids=WRONG_MASKS.keys())
def test_check_masks_rejects(causal_mask, padding_mask):
    with pytest.raises(AssertionError):
        week02.check_masks(causal_mask, padding_mask)


# ---------------------------------------------------------------------------------------------------------
# Scaled dot-product attention


def attention_without_scale(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_scaled_by_d(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / q.size(-1)
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_scaled_by_value_size(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(v.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    weights = torch.softmax(scores, dim=-2)
    return weights @ v, weights


def attention_mask_after_softmax(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def attention_inverted_mask(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, float("-inf"), scores)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_mask_with_zero(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, 0.0)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_mask_with_large_negative(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, -1e9)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_nan_for_empty_rows(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = torch.where(mask, scores, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_manual_softmax(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    exp = torch.exp(scores)
    if mask is not None:
        exp = exp * mask
    weights = exp / exp.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    return weights @ v, weights


def attention_ignores_mask(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def attention_float32(q, k, v, mask=None):
    q, k, v = q.float(), k.float(), v.float()
    return REF.scaled_dot_product_attention(q, k, v, mask)


def attention_output_only(q, k, v, mask=None):
    output, _ = REF.scaled_dot_product_attention(q, k, v, mask)
    return output


def attention_in_place_mask(q, k, v, mask=None):
    if mask is not None:
        mask[..., 0] = True  # "make sure every row has a key"
    return REF.scaled_dot_product_attention(q, k, v, mask)


WRONG_ATTENTION = [
    attention_without_scale,
    attention_scaled_by_d,
    attention_scaled_by_value_size,
    attention_softmax_over_queries,
    attention_mask_after_softmax,
    attention_inverted_mask,
    attention_mask_with_zero,
    attention_mask_with_large_negative,
    attention_nan_for_empty_rows,
    attention_manual_softmax,
    attention_ignores_mask,
    attention_float32,
    attention_output_only,
    attention_in_place_mask,
]


@pytest.mark.parametrize("fn", WRONG_ATTENTION, ids=lambda fn: fn.__name__)
def test_check_attention_rejects(fn):
    with pytest.raises(AssertionError):
        week02.check_scaled_dot_product_attention(fn)


# ---------------------------------------------------------------------------------------------------------
# Multi-head attention: subclasses of the reference that override one method as a student would write it


class HeadsSplitWithoutTranspose(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        B, T, C = x.shape
        H, D = self.n_heads, C // self.n_heads
        q = self.q_proj(x).view(B, H, T, D)
        k = self.k_proj(x).view(B, H, T, D)
        v = self.v_proj(x).view(B, H, T, D)
        out, weights = REF.scaled_dot_product_attention(q, k, v, mask)
        out = self.out_proj(out.transpose(1, 2).reshape(B, T, C))
        return out, weights.mean(dim=1) if average_attn_weights else weights


class HeadsMergedWithoutTranspose(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        B, T, C = x.shape
        H, D = self.n_heads, C // self.n_heads
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, D).transpose(1, 2)
        out, weights = REF.scaled_dot_product_attention(q, k, v, mask)
        out = self.out_proj(out.reshape(B, T, C))
        return out, weights.mean(dim=1) if average_attn_weights else weights


class NoOutputProjection(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        B, T, C = x.shape
        H, D = self.n_heads, C // self.n_heads
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, D).transpose(1, 2)
        out, weights = REF.scaled_dot_product_attention(q, k, v, mask)
        out = out.transpose(1, 2).reshape(B, T, C)
        return out, weights.mean(dim=1) if average_attn_weights else weights


class ScaledByModelWidth(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        B, T, C = x.shape
        H, D = self.n_heads, C // self.n_heads
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, D).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(C)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        out = self.out_proj((weights @ v).transpose(1, 2).reshape(B, T, C))
        return out, weights.mean(dim=1) if average_attn_weights else weights


class MaskInvertedLikeTorch(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        if mask is not None:
            mask = ~mask  # "PyTorch uses True for blocked positions"
        return super().forward(x, mask, average_attn_weights)


class WeightsSummedOverHeads(REF.MultiHeadAttention):
    def forward(self, x, mask=None, average_attn_weights=True):
        out, weights = super().forward(x, mask, average_attn_weights=False)
        return out, weights.sum(dim=1) if average_attn_weights else weights


class ProjectionsInWrongOrder(REF.MultiHeadAttention):
    @classmethod
    def from_torch(cls, module):
        copy_ = cls(module.embed_dim, module.num_heads).to(module.in_proj_weight.dtype)
        w_k, w_q, w_v = module.in_proj_weight.chunk(3)
        b_k, b_q, b_v = module.in_proj_bias.chunk(3)
        with torch.no_grad():
            for layer, w, b in ((copy_.q_proj, w_q, b_q), (copy_.k_proj, w_k, b_k), (copy_.v_proj, w_v, b_v)):
                layer.weight.copy_(w)
                layer.bias.copy_(b)
            copy_.out_proj.weight.copy_(module.out_proj.weight)
            copy_.out_proj.bias.copy_(module.out_proj.bias)
        return copy_


class BiasesNotCopied(REF.MultiHeadAttention):
    @classmethod
    def from_torch(cls, module):
        copy_ = cls(module.embed_dim, module.num_heads, bias=module.in_proj_bias is not None)
        copy_ = copy_.to(module.in_proj_weight.dtype)
        w_q, w_k, w_v = module.in_proj_weight.chunk(3)
        with torch.no_grad():
            copy_.q_proj.weight.copy_(w_q)
            copy_.k_proj.weight.copy_(w_k)
            copy_.v_proj.weight.copy_(w_v)
            copy_.out_proj.weight.copy_(module.out_proj.weight)
        return copy_


class DtypeNotCopied(REF.MultiHeadAttention):
    @classmethod
    def from_torch(cls, module):
        bias = module.in_proj_bias is not None
        copy_ = cls(module.embed_dim, module.num_heads, bias=bias)
        projections = (copy_.q_proj, copy_.k_proj, copy_.v_proj)
        with torch.no_grad():
            for layer, w in zip(projections, module.in_proj_weight.chunk(3)):
                layer.weight.copy_(w)
            copy_.out_proj.weight.copy_(module.out_proj.weight)
            if bias:
                for layer, b in zip(projections, module.in_proj_bias.chunk(3)):
                    layer.bias.copy_(b)
                copy_.out_proj.bias.copy_(module.out_proj.bias)
        return copy_


class NoDivisibilityCheck(REF.MultiHeadAttention):
    def __init__(self, d_model, n_heads, bias=True):
        nn.Module.__init__(self)
        self.d_model = d_model
        self.n_heads = n_heads
        self.head_size = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)


WRONG_MHA = [
    HeadsSplitWithoutTranspose,
    HeadsMergedWithoutTranspose,
    NoOutputProjection,
    ScaledByModelWidth,
    MaskInvertedLikeTorch,
    WeightsSummedOverHeads,
    ProjectionsInWrongOrder,
    BiasesNotCopied,
    DtypeNotCopied,
    NoDivisibilityCheck,
]


@pytest.mark.parametrize("cls", WRONG_MHA, ids=lambda cls: cls.__name__)
def test_check_mha_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_multi_head_attention(cls)


# ---------------------------------------------------------------------------------------------------------
# Positional encodings


def sinusoidal_swapped(T, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    positions = torch.arange(T, dtype=torch.float32)[:, None]
    frequencies = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.cos(positions * frequencies)
    pe[:, 1::2] = torch.sin(positions * frequencies)
    return pe


def sinusoidal_not_scaled(T, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    positions = torch.arange(T, dtype=torch.float32)[:, None].expand(T, d_model // 2)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(positions)
    pe[:, 1::2] = torch.cos(positions)
    return pe


def sinusoidal_exponent_i(T, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    positions = torch.arange(T, dtype=torch.float32)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float32)
    angles = positions / 10000.0 ** (i / d_model)
    pe = torch.zeros(T, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe


def sinusoidal_halves(T, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    positions = torch.arange(T, dtype=torch.float32)[:, None]
    frequencies = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angles = positions * frequencies
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def sinusoidal_float64(T, d_model):
    if d_model % 2:
        raise ValueError("d_model must be even")
    positions = torch.arange(T, dtype=torch.float64)[:, None]
    frequencies = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(T, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(positions * frequencies)
    pe[:, 1::2] = torch.cos(positions * frequencies)
    return pe


def sinusoidal_odd_allowed(T, d_model):
    positions = torch.arange(T, dtype=torch.float32)[:, None]
    frequencies = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    pe = torch.zeros(T, d_model + d_model % 2)
    pe[:, 0::2] = torch.sin(positions * frequencies)
    pe[:, 1::2] = torch.cos(positions * frequencies)
    return pe[:, :d_model]


def sinusoidal_transposed(T, d_model):
    return REF.sinusoidal_positional_encoding(T, d_model).T


WRONG_SINUSOIDAL = [
    sinusoidal_swapped,
    sinusoidal_not_scaled,
    sinusoidal_exponent_i,
    sinusoidal_halves,
    sinusoidal_float64,
    sinusoidal_odd_allowed,
    sinusoidal_transposed,
]


@pytest.mark.parametrize("fn", WRONG_SINUSOIDAL, ids=lambda fn: fn.__name__)
def test_check_sinusoidal_rejects(fn):
    with pytest.raises(AssertionError):
        week02.check_sinusoidal_positional_encoding(fn)


class LearnedWithoutLengthCheck(REF.LearnedPositionalEncoding):
    def forward(self, T):
        return self.embedding(torch.arange(T, device=self.embedding.weight.device))


class LearnedWholeTable(REF.LearnedPositionalEncoding):
    def forward(self, T):
        if T > self.max_len:
            raise ValueError(f"T = {T} exceeds max_len = {self.max_len}")
        return self.embedding.weight


class LearnedFromOne(REF.LearnedPositionalEncoding):
    def forward(self, T):
        if T > self.max_len:
            raise ValueError(f"T = {T} exceeds max_len = {self.max_len}")
        return self.embedding(torch.arange(1, T + 1, device=self.embedding.weight.device))


class LearnedDetached(REF.LearnedPositionalEncoding):
    def forward(self, T):
        if T > self.max_len:
            raise ValueError(f"T = {T} exceeds max_len = {self.max_len}")
        return self.embedding.weight[:T].detach()


class LearnedVagueError(REF.LearnedPositionalEncoding):
    def forward(self, T):
        if T > self.max_len:
            raise ValueError("sequence too long")
        return super().forward(T)


class LearnedWithScale(REF.LearnedPositionalEncoding):
    def __init__(self, max_len, d_model):
        super().__init__(max_len, d_model)
        self.scale = nn.Parameter(torch.ones(d_model))

    def forward(self, T):
        return super().forward(T) * self.scale


WRONG_LEARNED = [
    LearnedWithoutLengthCheck,
    LearnedWholeTable,
    LearnedFromOne,
    LearnedDetached,
    LearnedVagueError,
    LearnedWithScale,
]


@pytest.mark.parametrize("cls", WRONG_LEARNED, ids=lambda cls: cls.__name__)
def test_check_learned_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_learned_positional_encoding(cls)


# ---------------------------------------------------------------------------------------------------------
# Transformer block


class PostNormBlock(REF.Block):
    def forward(self, x, mask=None):
        attn_out, _ = self.attn(x, mask)
        x = self.ln1(x + attn_out)
        x = self.ln2(x + self.mlp(x))
        return x


class BlockWithoutAttentionResidual(REF.Block):
    def forward(self, x, mask=None):
        x, _ = self.attn(self.ln1(x), mask)
        x = x + self.mlp(self.ln2(x))
        return x


class BlockIgnoringMask(REF.Block):
    def forward(self, x, mask=None):
        attn_out, _ = self.attn(self.ln1(x))
        x = x + attn_out
        x = x + self.mlp(self.ln2(x))
        return x


class BlockWithOneLayerNorm(REF.Block):
    def forward(self, x, mask=None):
        attn_out, _ = self.attn(self.ln1(x), mask)
        x = x + attn_out
        x = x + self.mlp(self.ln1(x))
        return x


class TanhGeluMLP(REF.MLP):
    def __init__(self, config):
        super().__init__(config)
        self.gelu = nn.GELU(approximate="tanh")


class ReluMLP(REF.MLP):
    def __init__(self, config):
        super().__init__(config)
        self.gelu = nn.ReLU()


class NarrowMLP(REF.MLP):
    def __init__(self, config):
        super().__init__(config)
        self.fc = nn.Linear(config.d_model, 2 * config.d_model)
        self.proj = nn.Linear(2 * config.d_model, config.d_model)


def block_with_mlp(mlp_cls):
    class BlockWithOtherMLP(REF.Block):
        def __init__(self, config):
            super().__init__(config)
            self.mlp = mlp_cls(config)

    BlockWithOtherMLP.__name__ = f"BlockWith{mlp_cls.__name__}"
    return BlockWithOtherMLP


class BlockWithOtherNames(REF.Block):
    def __init__(self, config):
        nn.Module.__init__(self)
        self.norm1 = nn.LayerNorm(config.d_model)
        self.attn = REF.MultiHeadAttention(config.d_model, config.n_heads)
        self.norm2 = nn.LayerNorm(config.d_model)
        self.mlp = REF.MLP(config)

    def forward(self, x, mask=None):
        x = x + self.attn(self.norm1(x), mask)[0]
        return x + self.mlp(self.norm2(x))


WRONG_BLOCKS = [
    PostNormBlock,
    BlockWithoutAttentionResidual,
    BlockIgnoringMask,
    BlockWithOneLayerNorm,
    block_with_mlp(TanhGeluMLP),
    block_with_mlp(ReluMLP),
    block_with_mlp(NarrowMLP),
    BlockWithOtherNames,
]


@pytest.mark.parametrize("cls", WRONG_BLOCKS, ids=lambda cls: cls.__name__)
def test_check_block_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_block(cls, REF.GPTConfig)


# ---------------------------------------------------------------------------------------------------------
# GPT: forward pass


class UntiedGPT(REF.GPT):
    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = REF.LearnedPositionalEncoding(config.block_size, config.d_model)
        self.blocks = nn.ModuleList([REF.Block(config) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init_weights)


class HeadWithBias(REF.GPT):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head.bias = nn.Parameter(torch.zeros(config.vocab_size))


class DefaultInitGPT(REF.GPT):
    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = REF.LearnedPositionalEncoding(config.block_size, config.d_model)
        self.blocks = nn.ModuleList([REF.Block(config) for _ in range(config.n_layers)])
        self.ln_f = nn.LayerNorm(config.d_model)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight


class NoFinalLayerNorm(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(T)
        mask = REF.causal_mask(T, device=idx.device)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.lm_head(x)
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


class NoPositionEmbedding(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx)
        mask = REF.causal_mask(T, device=idx.device)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


class TargetsShiftedAgain(REF.GPT):
    def forward(self, idx, targets=None):
        logits, _ = super().forward(idx)
        loss = None
        if targets is not None:
            V = logits.size(-1)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1))
        return logits, loss


class SummedLoss(REF.GPT):
    def forward(self, idx, targets=None):
        logits, _ = super().forward(idx)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
        return logits, loss


class LogitsOnlyWithoutTargets(REF.GPT):
    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        return logits if targets is None else (logits, loss)


class PostNormGPT(REF.GPT):
    def __init__(self, config):
        super().__init__(config)
        self.blocks = nn.ModuleList([PostNormBlock(config) for _ in range(config.n_layers)])
        self.apply(self._init_weights)


WRONG_GPT_FORWARD = [
    UntiedGPT,
    HeadWithBias,
    DefaultInitGPT,
    NoFinalLayerNorm,
    NoPositionEmbedding,
    TargetsShiftedAgain,
    SummedLoss,
    LogitsOnlyWithoutTargets,
    PostNormGPT,
]


@pytest.mark.parametrize("cls", WRONG_GPT_FORWARD, ids=lambda cls: cls.__name__)
def test_check_gpt_forward_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_gpt_forward(cls, REF.GPTConfig)


# ---------------------------------------------------------------------------------------------------------
# GPT: causality


def gpt_with_mask(make_mask):
    class GPTWithOtherMask(REF.GPT):
        def forward(self, idx, targets=None):
            B, T = idx.shape
            x = self.tok_emb(idx) + self.pos_emb(T)
            mask = make_mask(T, idx.device)
            for block in self.blocks:
                x = block(x, mask)
            logits = self.lm_head(self.ln_f(x))
            loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
            return logits, loss

    return GPTWithOtherMask


NonCausalGPT = gpt_with_mask(lambda T, device: None)
UpperTriangleGPT = gpt_with_mask(lambda T, device: torch.ones(T, T, dtype=torch.bool, device=device).triu())
DiagonalOnlyGPT = gpt_with_mask(lambda T, device: torch.eye(T, dtype=torch.bool, device=device))


class MaskInFirstBlockOnly(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(T)
        x = self.blocks[0](x, REF.causal_mask(T, device=idx.device))
        for block in self.blocks[1:]:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


WRONG_GPT_CAUSAL = {
    "no mask": NonCausalGPT,
    "upper triangle mask": UpperTriangleGPT,
    "diagonal only mask": DiagonalOnlyGPT,
    "mask in first block only": MaskInFirstBlockOnly,
}


@pytest.mark.parametrize("cls", WRONG_GPT_CAUSAL.values(), ids=WRONG_GPT_CAUSAL.keys())
def test_check_gpt_causal_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_gpt_causal(cls, REF.GPTConfig)


# ---------------------------------------------------------------------------------------------------------
# GPT: training


class DetachedEmbeddings(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx).detach() + self.pos_emb(T)
        mask = REF.causal_mask(T, device=idx.device)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


class HeadOnEmbeddings(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok = self.tok_emb(idx)
        x = tok + self.pos_emb(T)
        mask = REF.causal_mask(T, device=idx.device)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.lm_head(self.ln_f(tok))
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


class SoftmaxBeforeCrossEntropy(REF.GPT):
    def forward(self, idx, targets=None):
        logits, _ = super().forward(idx)
        loss = None
        if targets is not None:
            probabilities = torch.softmax(logits, dim=-1)
            loss = F.cross_entropy(probabilities.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


class BlocksWithoutGradient(REF.GPT):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.tok_emb(idx) + self.pos_emb(T)
        mask = REF.causal_mask(T, device=idx.device)
        with torch.no_grad():
            for block in self.blocks:
                x = block(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss


WRONG_GPT_TRAINING = [DetachedEmbeddings, HeadOnEmbeddings, SoftmaxBeforeCrossEntropy, BlocksWithoutGradient]


@pytest.mark.parametrize("cls", WRONG_GPT_TRAINING, ids=lambda cls: cls.__name__)
def test_check_gpt_training_rejects(cls):
    with pytest.raises(AssertionError):
        week02.check_gpt_training(cls, REF.GPTConfig)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def demo_module():
    """Build a module from the reference code with DEMO_MISTAKES applied, as `course demo` does."""
    return mistakes_module("week02")


def test_demo_mistakes_name_solution_cells():
    notebook = read_notebook(REPO_ROOT / "source" / "week02" / "week02.ipynb")
    solution_ids = {grade_id(cell) for cell in notebook.cells if is_solution_cell(cell)}
    assert {target for target, _, _ in week02.DEMO_MISTAKES} <= solution_ids


def test_demo_mistakes_give_partial_credit():
    module = demo_module()
    failed = set()
    for name, call in check_calls(module).items():
        try:
            call()
        except AssertionError:
            failed.add(name)
    assert failed == {"masks", "sinusoidal_positional_encoding", "block", "gpt_forward"}
