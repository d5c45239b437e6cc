"""Week 4 hidden checks: the reference passes every check, and realistic wrong implementations fail them.

Also the unit tests of `course_lib.icd10cm`, the data module of the week.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder import week04
from course_lib.demo import mistakes_module
from course_lib import icd10cm
from course_lib.notebooks import grade_id, is_solution_cell, read_notebook
from course_lib.paths import REPO_ROOT
from course_lib.solutions import load_reference

REF = load_reference("week04")
IGNORE = -100


# Each check with the arguments its grade cell passes, taken from a module built like the reference.
def check_calls(module):
    return {
        "format_prompt": lambda: week04.check_format_prompt(module.format_prompt),
        "build_sft_example": lambda: week04.check_build_sft_example(module.build_sft_example),
        "sft_loss": lambda: week04.check_sft_loss(module.sft_loss),
        "train_evaluate": lambda: week04.check_train_evaluate(module.train, module.evaluate),
        "count_parameters": lambda: week04.check_count_parameters(module.count_parameters),
        "lora_linear": lambda: week04.check_lora_linear(module.LoRALinear),
        "add_lora": lambda: week04.check_add_lora(module.add_lora, module.LoRALinear),
        "adapter": lambda: week04.check_adapter(module.Adapter),
        "soft_prompt": lambda: week04.check_soft_prompt(module.SoftPrompt),
        "bag_of_embeddings": lambda: week04.check_bag_of_embeddings(module.BagOfEmbeddingsClassifier),
    }


@pytest.mark.parametrize("name", list(check_calls(REF)))
def test_reference_passes_check(name):
    check_calls(REF)[name]()


def test_checks_keep_global_rng_state():
    state = torch.random.get_rng_state()
    week04.check_lora_linear(REF.LoRALinear)
    week04.check_train_evaluate(REF.train, REF.evaluate)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_reference_checks_silent(capfd):
    # nbgrader scores a grade cell 0 when it writes to stderr, so a warning would cost a correct submission its points.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in check_calls(REF).values():
            call()
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------------------------------------------
# Prompt template


def format_without_strip(instruction, input_text=""):
    if not instruction.strip():
        raise ValueError("empty instruction")
    if input_text.strip():
        return REF.PROMPT_WITH_INPUT_TEMPLATE.format(instruction=instruction, input=input_text)
    return REF.PROMPT_TEMPLATE.format(instruction=instruction)


def format_always_input(instruction, input_text=""):
    if not instruction.strip():
        raise ValueError("empty instruction")
    return REF.PROMPT_WITH_INPUT_TEMPLATE.format(instruction=instruction.strip(), input=input_text.strip())


def format_without_final_newline(instruction, input_text=""):
    return REF.format_prompt(instruction, input_text).rstrip("\n")


def format_accepts_empty(instruction, input_text=""):
    instruction, input_text = instruction.strip(), input_text.strip()
    if input_text:
        return REF.PROMPT_WITH_INPUT_TEMPLATE.format(instruction=instruction, input=input_text)
    return REF.PROMPT_TEMPLATE.format(instruction=instruction)


def format_empty_check_without_strip(instruction, input_text=""):
    if not instruction.strip():
        raise ValueError("empty instruction")
    if input_text:  # whitespace-only input keeps an empty input section
        return REF.PROMPT_WITH_INPUT_TEMPLATE.format(instruction=instruction.strip(), input=input_text.strip())
    return REF.PROMPT_TEMPLATE.format(instruction=instruction.strip())


WRONG_FORMAT = [
    format_without_strip,
    format_always_input,
    format_without_final_newline,
    format_accepts_empty,
    format_empty_check_without_strip,
]


@pytest.mark.parametrize("fn", WRONG_FORMAT, ids=lambda fn: fn.__name__)
def test_check_format_prompt_rejects(fn):
    with pytest.raises(AssertionError):
        week04.check_format_prompt(fn)


# ---------------------------------------------------------------------------------------------------------
# SFT example builder


def example_from_lists(input_ids, attention_mask, labels):
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
    }


def build_masks_pad_by_id(prompt, response, encode, max_length, pad_id, eos_id):
    p, r = list(encode(prompt)), list(encode(response)) + [eos_id]
    if len(p) >= max_length:
        raise ValueError("prompt too long")
    ids = (p + r)[:max_length]
    ids += [pad_id] * (max_length - len(ids))
    mask = [int(i != pad_id) for i in ids]
    labels = [IGNORE if (k < len(p) or i == pad_id) else i for k, i in enumerate(ids)]
    return example_from_lists(ids, mask, labels)


def build_without_eos(prompt, response, encode, max_length, pad_id, eos_id):
    p, r = list(encode(prompt)), list(encode(response))
    if len(p) >= max_length:
        raise ValueError("prompt too long")
    ids = (p + r)[:max_length]
    labels = ([IGNORE] * len(p) + r)[:max_length]
    n = max_length - len(ids)
    return example_from_lists(ids + [pad_id] * n, [1] * len(ids) + [0] * n, labels + [IGNORE] * n)


def build_labels_on_prompt(prompt, response, encode, max_length, pad_id, eos_id):
    p, r = list(encode(prompt)), list(encode(response)) + [eos_id]
    if len(p) >= max_length:
        raise ValueError("prompt too long")
    ids = (p + r)[:max_length]
    n = max_length - len(ids)
    return example_from_lists(ids + [pad_id] * n, [1] * len(ids) + [0] * n, ids + [IGNORE] * n)


def build_padding_labelled(prompt, response, encode, max_length, pad_id, eos_id):
    p, r = list(encode(prompt)), list(encode(response)) + [eos_id]
    if len(p) >= max_length:
        raise ValueError("prompt too long")
    ids = (p + r)[:max_length]
    n = max_length - len(ids)
    padded = ids + [pad_id] * n
    return example_from_lists(padded, [1] * len(ids) + [0] * n, [IGNORE] * len(p) + padded[len(p):])


def build_encoding_joined_text(prompt, response, encode, max_length, pad_id, eos_id):
    p = list(encode(prompt))
    if len(p) >= max_length:
        raise ValueError("prompt too long")
    ids = (list(encode(prompt + response)) + [eos_id])[:max_length]
    labels = ([IGNORE] * len(p) + ids[len(p):])[:max_length]
    n = max_length - len(ids)
    return example_from_lists(ids + [pad_id] * n, [1] * len(ids) + [0] * n, labels + [IGNORE] * n)


def build_without_length_check(prompt, response, encode, max_length, pad_id, eos_id):
    p, r = list(encode(prompt)), list(encode(response)) + [eos_id]
    ids = (p + r)[:max_length]
    labels = ([IGNORE] * len(p) + r)[:max_length]
    n = max_length - len(ids)
    return example_from_lists(ids + [pad_id] * n, [1] * len(ids) + [0] * n, labels + [IGNORE] * n)


def build_int32(prompt, response, encode, max_length, pad_id, eos_id):
    return {key: value.int() for key, value in REF.build_sft_example(prompt, response, encode, max_length, pad_id, eos_id).items()}


WRONG_BUILD = [
    build_masks_pad_by_id,
    build_without_eos,
    build_labels_on_prompt,
    build_padding_labelled,
    build_encoding_joined_text,
    build_without_length_check,
    build_int32,
]


@pytest.mark.parametrize("fn", WRONG_BUILD, ids=lambda fn: fn.__name__)
def test_check_build_sft_example_rejects(fn):
    with pytest.raises(AssertionError):
        week04.check_build_sft_example(fn)


# ---------------------------------------------------------------------------------------------------------
# SFT loss


def loss_without_shift(logits, labels):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE)


def loss_shift_reversed(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), labels[:, :-1].reshape(-1), ignore_index=IGNORE)


def loss_over_all_positions(logits, labels):
    V = logits.size(-1)
    per_token = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), reduction="none")
    return per_token.sum() / per_token.numel()


def loss_mean_of_sequence_means(logits, labels):
    losses = [REF.sft_loss(logits[b : b + 1], labels[b : b + 1]) for b in range(logits.size(0))]
    return torch.stack(losses).mean()


def loss_nan_when_empty(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def loss_detached_zero(logits, labels):
    if not bool((labels[:, 1:] != IGNORE).any()):
        return torch.tensor(0.0)
    return REF.sft_loss(logits, labels)


WRONG_LOSS = [
    loss_without_shift,
    loss_shift_reversed,
    loss_over_all_positions,
    loss_mean_of_sequence_means,
    loss_nan_when_empty,
    loss_detached_zero,
]


@pytest.mark.parametrize("fn", WRONG_LOSS, ids=lambda fn: fn.__name__)
def test_check_sft_loss_rejects(fn):
    with pytest.raises(AssertionError):
        week04.check_sft_loss(fn)


# ---------------------------------------------------------------------------------------------------------
# Training and evaluation loop


def train_without_zero_grad(model, loader, optimizer, loss_fn=F.cross_entropy, epochs=1):
    model.train()
    losses = []
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def train_without_train_mode(model, loader, optimizer, loss_fn=F.cross_entropy, epochs=1):
    losses = []
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses


def train_returning_tensors(model, loader, optimizer, loss_fn=F.cross_entropy, epochs=1):
    model.train()
    losses = []
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss)
    return losses


def train_one_epoch_only(model, loader, optimizer, loss_fn=F.cross_entropy, epochs=1):
    return REF.train(model, loader, optimizer, loss_fn, epochs=1)


def evaluate_in_train_mode(model, loader, loss_fn=F.cross_entropy):
    with torch.no_grad():
        total, correct, n = 0.0, 0, 0
        for x, y in loader:
            logits = model(x)
            total += loss_fn(logits, y).item() * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            n += len(y)
    return {"loss": total / n, "accuracy": correct / n}


def evaluate_with_grad(model, loader, loss_fn=F.cross_entropy):
    model.eval()
    total, correct, n = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        total += loss_fn(logits, y).item() * len(y)
        correct += int((logits.argmax(-1) == y).sum())
        n += len(y)
    return {"loss": total / n, "accuracy": correct / n}


def evaluate_mean_of_batches(model, loader, loss_fn=F.cross_entropy):
    model.eval()
    losses, accuracies = [], []
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            losses.append(loss_fn(logits, y).item())
            accuracies.append((logits.argmax(-1) == y).float().mean().item())
    return {"loss": sum(losses) / len(losses), "accuracy": sum(accuracies) / len(accuracies)}


def evaluate_divides_by_batches(model, loader, loss_fn=F.cross_entropy):
    model.eval()
    total, correct, n_batches = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            total += loss_fn(logits, y).item() * len(y)
            correct += int((logits.argmax(-1) == y).sum())
            n_batches += 1
    n = sum(len(y) for _, y in loader)
    return {"loss": total / n, "accuracy": correct / (n_batches * 16)}


def evaluate_tensor_metrics(model, loader, loss_fn=F.cross_entropy):
    metrics = REF.evaluate(model, loader, loss_fn)
    return {key: torch.tensor(value) for key, value in metrics.items()}


def evaluate_empty_is_zero(model, loader, loss_fn=F.cross_entropy):
    if not list(loader):
        return {"loss": 0.0, "accuracy": 0.0}
    return REF.evaluate(model, loader, loss_fn)


WRONG_LOOPS = {
    "train without zero_grad": (train_without_zero_grad, REF.evaluate),
    "train without train mode": (train_without_train_mode, REF.evaluate),
    "train returning tensors": (train_returning_tensors, REF.evaluate),
    "train ignoring epochs": (train_one_epoch_only, REF.evaluate),
    "evaluate in train mode": (REF.train, evaluate_in_train_mode),
    "evaluate with grad": (REF.train, evaluate_with_grad),
    "evaluate mean of batch means": (REF.train, evaluate_mean_of_batches),
    "evaluate accuracy over batches": (REF.train, evaluate_divides_by_batches),
    "evaluate tensor metrics": (REF.train, evaluate_tensor_metrics),
    "evaluate empty loader": (REF.train, evaluate_empty_is_zero),
}


@pytest.mark.parametrize("train, evaluate", WRONG_LOOPS.values(), ids=WRONG_LOOPS.keys())
def test_check_train_evaluate_rejects(train, evaluate):
    with pytest.raises(AssertionError):
        week04.check_train_evaluate(train, evaluate)


# ---------------------------------------------------------------------------------------------------------
# Parameter counts


def count_ignoring_requires_grad(model):
    total = sum(p.numel() for p in model.parameters())
    return total, total


def count_tensors(model):
    parameters = list(model.parameters())
    return sum(1 for p in parameters if p.requires_grad), len(parameters)


def count_named_with_duplicates(model):
    parameters = [p for _, p in model.named_parameters(remove_duplicate=False)]
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


def count_with_buffers(model):
    trainable, total = REF.count_parameters(model)
    return trainable, total + sum(b.numel() for b in model.buffers())


def count_swapped(model):
    trainable, total = REF.count_parameters(model)
    return total, trainable


WRONG_COUNTS = [count_ignoring_requires_grad, count_tensors, count_named_with_duplicates, count_with_buffers, count_swapped]


@pytest.mark.parametrize("fn", WRONG_COUNTS, ids=lambda fn: fn.__name__)
def test_check_count_parameters_rejects(fn):
    with pytest.raises(AssertionError):
        week04.check_count_parameters(fn)


# ---------------------------------------------------------------------------------------------------------
# LoRA layer


class LoRAWithoutScale(REF.LoRALinear):
    def forward(self, x):
        if self.merged:
            return self.base(x)
        return self.base(x) + x @ self.lora_A.T @ self.lora_B.T


class LoRAScaledByAlpha(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scaling = alpha


class LoRAZeroA(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        with torch.no_grad():
            self.lora_A.zero_()
            self.lora_B.normal_(0.0, 0.01)


class LoRANormalA(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        with torch.no_grad():
            self.lora_A.normal_()


class LoRABaseTrainable(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        base.weight.requires_grad_(True)


class LoRACopiesBase(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        super().__init__(copy.deepcopy(base), r, alpha)


class LoRATransposedFactors(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        if r < 1:
            raise ValueError("r")
        if not isinstance(base, nn.Linear):
            raise TypeError("base")
        self.base = base.requires_grad_(False)
        self.r, self.alpha, self.scaling, self.merged = r, alpha, alpha / r, False
        self.lora_A = nn.Parameter(torch.empty(base.in_features, r))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + self.scaling * (x @ self.lora_A @ self.lora_B)


class LoRADoubleMergeAdds(REF.LoRALinear):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scaling * (self.lora_B @ self.lora_A)
        self.merged = True


class LoRAMergedStillAdds(REF.LoRALinear):
    def forward(self, x):
        return self.base(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)


class LoRAUnmergeForgetsFlag(REF.LoRALinear):
    @torch.no_grad()
    def unmerge(self):
        if self.merged:
            self.base.weight -= self.scaling * (self.lora_B @ self.lora_A)


class LoRADetachedUpdate(REF.LoRALinear):
    def forward(self, x):
        if self.merged:
            return self.base(x)
        return self.base(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T).detach()


class LoRANoRankCheck(REF.LoRALinear):
    def __init__(self, base, r, alpha):
        if r < 1:
            nn.Module.__init__(self)
            return
        super().__init__(base, r, alpha)


WRONG_LORA = [
    LoRAWithoutScale,
    LoRAScaledByAlpha,
    LoRAZeroA,
    LoRANormalA,
    LoRABaseTrainable,
    LoRACopiesBase,
    LoRATransposedFactors,
    LoRADoubleMergeAdds,
    LoRAMergedStillAdds,
    LoRAUnmergeForgetsFlag,
    LoRADetachedUpdate,
    LoRANoRankCheck,
]


@pytest.mark.parametrize("cls", WRONG_LORA, ids=lambda cls: cls.__name__)
def test_check_lora_linear_rejects(cls):
    with pytest.raises(AssertionError):
        week04.check_lora_linear(cls)


# ---------------------------------------------------------------------------------------------------------
# add_lora


def add_lora_without_freezing(model, target_modules, r, alpha):
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in target_modules]
    if not names:
        raise ValueError("no match")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, REF.LoRALinear(getattr(parent, child), r, alpha))
    return model


def add_lora_substring_match(model, target_modules, r, alpha):
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and any(t in n for t in target_modules)]
    if not names:
        raise ValueError("no match")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, REF.LoRALinear(getattr(parent, child), r, alpha))
    return model


def add_lora_top_level_only(model, target_modules, r, alpha):
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    found = False
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear) and name in target_modules:
            setattr(model, name, REF.LoRALinear(child, r, alpha))
            found = True
    if not found:
        raise ValueError("no match")
    return model


def add_lora_no_error(model, target_modules, r, alpha):
    try:
        return REF.add_lora(model, target_modules, r, alpha)
    except ValueError:
        return model


def add_lora_rank_for_alpha(model, target_modules, r, alpha):
    return REF.add_lora(model, target_modules, alpha, r)


WRONG_ADD_LORA = [
    add_lora_without_freezing,
    add_lora_substring_match,
    add_lora_top_level_only,
    add_lora_no_error,
    add_lora_rank_for_alpha,
]


@pytest.mark.parametrize("fn", WRONG_ADD_LORA, ids=lambda fn: fn.__name__)
def test_check_add_lora_rejects(fn):
    with pytest.raises(AssertionError):
        week04.check_add_lora(fn, REF.LoRALinear)


def test_check_add_lora_rejects_unscaled_layer():
    def add_unscaled(model, target_modules, r, alpha):
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in target_modules]
        model.requires_grad_(False)
        if not names:
            raise ValueError("no match")
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            setattr(parent, child, LoRAWithoutScale(getattr(parent, child), r, alpha))
        return model

    with pytest.raises(AssertionError):
        week04.check_add_lora(add_unscaled, LoRAWithoutScale)


# ---------------------------------------------------------------------------------------------------------
# Adapter


class AdapterRandomUp(REF.Adapter):
    def __init__(self, d_model, bottleneck):
        nn.Module.__init__(self)
        self.down = nn.Linear(d_model, bottleneck)
        self.activation = nn.GELU()
        self.up = nn.Linear(bottleneck, d_model)


class AdapterWithoutResidual(REF.Adapter):
    def forward(self, h):
        return self.up(self.activation(self.down(h)))


class AdapterRelu(REF.Adapter):
    def __init__(self, d_model, bottleneck):
        super().__init__(d_model, bottleneck)
        self.activation = nn.ReLU()


class AdapterZeroDown(REF.Adapter):
    def __init__(self, d_model, bottleneck):
        super().__init__(d_model, bottleneck)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)


class AdapterWithoutBiases(REF.Adapter):
    def __init__(self, d_model, bottleneck):
        nn.Module.__init__(self)
        self.down = nn.Linear(d_model, bottleneck, bias=False)
        self.activation = nn.GELU()
        self.up = nn.Linear(bottleneck, d_model, bias=False)
        nn.init.zeros_(self.up.weight)


class AdapterTanhGelu(REF.Adapter):
    def __init__(self, d_model, bottleneck):
        super().__init__(d_model, bottleneck)
        self.activation = nn.GELU(approximate="tanh")


WRONG_ADAPTERS = [AdapterRandomUp, AdapterWithoutResidual, AdapterRelu, AdapterZeroDown, AdapterWithoutBiases, AdapterTanhGelu]


@pytest.mark.parametrize("cls", WRONG_ADAPTERS, ids=lambda cls: cls.__name__)
def test_check_adapter_rejects(cls):
    with pytest.raises(AssertionError):
        week04.check_adapter(cls)


# ---------------------------------------------------------------------------------------------------------
# Soft prompt


class SoftPromptAppended(REF.SoftPrompt):
    def forward(self, inputs_embeds, attention_mask=None):
        B, T, _ = inputs_embeds.shape
        P = self.prompt.size(0)
        embeds = torch.cat([inputs_embeds, self.prompt.expand(B, -1, -1)], dim=1)
        if attention_mask is None:
            attention_mask = torch.ones(B, T, dtype=torch.long, device=inputs_embeds.device)
        ones = torch.ones(B, P, dtype=attention_mask.dtype, device=attention_mask.device)
        return embeds, torch.cat([attention_mask, ones], dim=1)


class SoftPromptSharedInit(REF.SoftPrompt):
    def __init__(self, n_virtual_tokens, d_model, init=None):
        super().__init__(n_virtual_tokens, d_model, init)
        if init is not None:
            self.prompt = nn.Parameter(init)


class SoftPromptMaskUnchanged(REF.SoftPrompt):
    def forward(self, inputs_embeds, attention_mask=None):
        embeds, _ = super().forward(inputs_embeds, attention_mask)
        return embeds, attention_mask


class SoftPromptFloatMask(REF.SoftPrompt):
    def forward(self, inputs_embeds, attention_mask=None):
        embeds, mask = super().forward(inputs_embeds, attention_mask)
        return embeds, mask.float()


class SoftPromptZerosInMask(REF.SoftPrompt):
    def forward(self, inputs_embeds, attention_mask=None):
        embeds, mask = super().forward(inputs_embeds, attention_mask)
        mask = mask.clone()
        mask[:, : self.prompt.size(0)] = 0
        return embeds, mask


class SoftPromptUnitInit(REF.SoftPrompt):
    def __init__(self, n_virtual_tokens, d_model, init=None):
        super().__init__(n_virtual_tokens, d_model, torch.randn(n_virtual_tokens, d_model) if init is None else init)


class SoftPromptDetached(REF.SoftPrompt):
    def forward(self, inputs_embeds, attention_mask=None):
        embeds, mask = super().forward(inputs_embeds, attention_mask)
        P = self.prompt.size(0)
        return torch.cat([embeds[:, :P].detach(), embeds[:, P:]], dim=1), mask


WRONG_SOFT_PROMPTS = [
    SoftPromptAppended,
    SoftPromptSharedInit,
    SoftPromptMaskUnchanged,
    SoftPromptFloatMask,
    SoftPromptZerosInMask,
    SoftPromptUnitInit,
    SoftPromptDetached,
]


@pytest.mark.parametrize("cls", WRONG_SOFT_PROMPTS, ids=lambda cls: cls.__name__)
def test_check_soft_prompt_rejects(cls):
    with pytest.raises(AssertionError):
        week04.check_soft_prompt(cls)


# ---------------------------------------------------------------------------------------------------------
# Bag-of-embeddings classifier


class BagMeanOverPadding(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        return self.head(self.embedding(ids).mean(dim=1))


class BagSumNotMean(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        mask = (ids != self.pad_id).unsqueeze(-1).float()
        return self.head((self.embedding(ids) * mask).sum(dim=1))


class BagNanOnEmptyRow(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        mask = (ids != self.pad_id).unsqueeze(-1).float()
        return self.head((self.embedding(ids) * mask).sum(dim=1) / mask.sum(dim=1))


class BagReliesOnZeroPadRow(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        counts = (ids != self.pad_id).sum(dim=1, keepdim=True).clamp(min=1)
        return self.head(self.embedding(ids).sum(dim=1) / counts)


class BagPadIdIgnored(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).float()
        return self.head((self.embedding(ids) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1))


class BagMaxPool(REF.BagOfEmbeddingsClassifier):
    def forward(self, ids):
        return self.head(self.embedding(ids).max(dim=1).values)


WRONG_BAGS = [BagMeanOverPadding, BagSumNotMean, BagNanOnEmptyRow, BagReliesOnZeroPadRow, BagPadIdIgnored, BagMaxPool]


@pytest.mark.parametrize("cls", WRONG_BAGS, ids=lambda cls: cls.__name__)
def test_check_bag_of_embeddings_rejects(cls):
    with pytest.raises(AssertionError):
        week04.check_bag_of_embeddings(cls)


# ---------------------------------------------------------------------------------------------------------
# Demo mistakes


def demo_module():
    """Build a module from the reference code with DEMO_MISTAKES applied, as `course demo` does."""
    return mistakes_module("week04")


def test_demo_mistakes_name_solution_cells():
    notebook = read_notebook(REPO_ROOT / "source" / "week04" / "week04.ipynb")
    solution_ids = {grade_id(cell) for cell in notebook.cells if is_solution_cell(cell)}
    assert {target for target, _, _ in week04.DEMO_MISTAKES} <= solution_ids


def test_demo_mistakes_give_partial_credit():
    module = demo_module()
    failed = set()
    for name, call in check_calls(module).items():
        try:
            call()
        except AssertionError:
            failed.add(name)
    assert failed == {"build_sft_example", "sft_loss", "adapter"}


# ---------------------------------------------------------------------------------------------------------
# course_lib.icd10cm


def test_chapter_of_uses_hierarchy():
    assert icd10cm.chapter_of("I10") == "9"
    assert icd10cm.chapter_of("E11.9") == "4"
    assert icd10cm.chapter_of("D50.0") == "3"  # a D code outside the neoplasm chapter
    assert icd10cm.chapter_of("H65.0") == "8"  # an H code in the ear chapter, not the eye chapter
    assert icd10cm.chapter_of("9") == "9"


def test_chapter_of_rejects_unknown_code():
    with pytest.raises(ValueError, match="not an ICD-10-CM code"):
        icd10cm.chapter_of("XYZ")


def test_chapter_codes_are_leaves_of_chapter():
    import simple_icd_10_cm as icd

    codes = icd10cm.chapter_codes("10")
    assert len(codes) > 300
    assert all(icd.is_leaf(code) and icd10cm.chapter_of(code) == "10" for code in codes[:50])
    with pytest.raises(ValueError, match="chapter"):
        icd10cm.chapter_codes("23")


def test_split_stratified_and_seeded():
    split = icd10cm.load_chapter_classification(("9", "10"), n_per_chapter=40, test_size=0.25, seed=3)
    assert len(split.train_texts) == 60
    assert len(split.test_texts) == 20
    assert split.test_labels.count(0) == split.test_labels.count(1) == 10
    assert not set(split.train_codes) & set(split.test_codes)
    assert all(icd10cm.chapter_of(code) == split.chapters[label]
               for code, label in zip(split.test_codes, split.test_labels))
    again = icd10cm.load_chapter_classification(("9", "10"), n_per_chapter=40, test_size=0.25, seed=3)
    assert again.train_codes == split.train_codes
    other = icd10cm.load_chapter_classification(("9", "10"), n_per_chapter=40, test_size=0.25, seed=4)
    assert other.train_codes != split.train_codes
    assert split.titles[0].startswith("Diseases of the circulatory system")


def test_split_rejects_single_chapter():
    with pytest.raises(ValueError, match="two different chapters"):
        icd10cm.load_chapter_classification(("9", "9"))


def test_small_chapter_contributes_all_codes():
    split = icd10cm.load_chapter_classification(("22", "10"), n_per_chapter=20, seed=0)
    n_special = len(icd10cm.chapter_codes("22"))
    assert (split.train_labels + split.test_labels).count(0) == n_special


def test_vocabulary_and_encoding():
    vocabulary = icd10cm.build_vocabulary(["Acute bronchitis", "acute  sinusitis, acute"], min_count=1)
    assert vocabulary["<pad>"] == 0
    assert vocabulary["<unk>"] == 1
    assert vocabulary["acute"] == 2  # the most frequent word comes first
    assert list(vocabulary)[3:] == ["bronchitis", "sinusitis"]
    ids = icd10cm.encode_texts(["acute bronchitis", "chronic", ""], vocabulary)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[2, 3], [1, 0], [0, 0]]
    assert icd10cm.encode_texts(["acute acute acute"], vocabulary, max_length=2).tolist() == [[2, 2]]
    assert "bronchitis" not in icd10cm.build_vocabulary(["Acute bronchitis", "acute"], min_count=2)
