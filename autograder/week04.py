"""Hidden checks of week 4, fine-tuning and adaptation.

Each `check_<name>` takes the student's objects from one grade cell and raises AssertionError with what was
expected, what was received and the likely cause. The SFT loss is compared with
`torch.nn.functional.cross_entropy(ignore_index=-100)`, accuracy with `sklearn.metrics.accuracy_score`, the
LoRA layers with `peft` LoRA layers carrying the same weights, and the bag-of-embeddings classifier with
`torch.nn.EmbeddingBag(mode="mean")`.
"""

from __future__ import annotations

import copy
import functools
import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_lib import get_device, tolerance

SEED = 4
IGNORE_INDEX = -100

# Text replacements (grade_id of a solution cell, text in its reference code, replacement) that build a
# submission with realistic mistakes. The label builder masks the EOS when it doubles as padding, the loss is
# not shifted, and the adapter's up-projection keeps PyTorch's random initialisation. Every other check passes.
DEMO_MISTAKES = [
    (
        "build_sft_example",
        "    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids)[:max_length]\n",
        "    labels = list(input_ids)\n",
    ),
    (
        "build_sft_example",
        "    return {\n",
        "    labels = [IGNORE_INDEX if i < len(prompt_ids) or token == pad_id else token for i, token in enumerate(labels)]\n"
        "    return {\n",
    ),
    (
        "sft_loss",
        "shifted_logits = logits[:, :-1].reshape(-1, V)",
        "shifted_logits = logits[:, 1:].reshape(-1, V)",
    ),
    (
        "adapter",
        "        nn.init.zeros_(self.up.weight)\n        nn.init.zeros_(self.up.bias)\n",
        "",
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Shared helpers


def _preserve_rng(check):
    """Wrap a check so that it leaves the CPU random state of the student's session unchanged."""

    @functools.wraps(check)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return check(*args, **kwargs)

    return wrapper


def _devices() -> list[torch.device]:
    """Return the CPU, followed by the course's accelerator when it has one."""
    devices = [torch.device("cpu")]
    accelerator = get_device()
    if accelerator.type != "cpu":
        devices.append(accelerator)
    return devices


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(SEED)


def _describe(value) -> str:
    """Summarise a returned value for a failure message: type, shape, dtype, device and a few values."""
    if not isinstance(value, torch.Tensor):
        return f"{type(value).__name__} {repr(value)[:100]}"
    head = value.detach().flatten()[:6].cpu().tolist()
    if value.dtype.is_floating_point:
        values = ", ".join(f"{item:.4g}" for item in head)
    else:
        values = ", ".join(str(item) for item in head)
    more = ", ..." if value.numel() > 6 else ""
    return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}, device {value.device}, values [{values}{more}]"


def _assert_close(actual, expected, what: str, hint: str, rtol: float, atol: float) -> None:
    """Check a tensor against the expected one; the message names the first mismatch and the likely cause."""
    assert isinstance(actual, torch.Tensor), f"{what}: expected a torch.Tensor, received {_describe(actual)}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{what}: expected shape {tuple(expected.shape)}, received {_describe(actual)}. {hint}"
    )
    actual64 = actual.detach().cpu().to(torch.float64)
    expected64 = expected.detach().cpu().to(torch.float64)
    close = torch.isclose(actual64, expected64, rtol=rtol, atol=atol)
    if bool(close.all()):
        return
    index = tuple((~close).nonzero()[0].tolist())
    difference = (actual64 - expected64).abs().nan_to_num(nan=math.inf).max().item()
    raise AssertionError(
        f"{what}: at index {index} expected {expected64[index].item():.6g}, received {actual64[index].item():.6g} "
        f"(largest absolute difference {difference:.3g}, rtol {rtol:.2g}, atol {atol:.2g}). {hint}"
    )


def _expect_error(call, error_type, what: str, why: str) -> None:
    try:
        call()
    except error_type:
        return
    raise AssertionError(f"{what} returned without error, expected a {error_type.__name__}: {why}")


# ---------------------------------------------------------------------------------------------------------
# Supervised fine-tuning: template, example builder, loss


_TEMPLATE = "### Instruction:\n{instruction}\n\n### Response:\n"
_TEMPLATE_WITH_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


@_preserve_rng
def check_format_prompt(format_prompt) -> None:
    """Compare `format_prompt(instruction, input_text)` with the Alpaca template on plain and edge cases."""
    cases = [
        (("Summarise the note.",), _TEMPLATE.format(instruction="Summarise the note.")),
        (
            ("Give the ICD-10-CM chapter.", "Acute bronchitis"),
            _TEMPLATE_WITH_INPUT.format(instruction="Give the ICD-10-CM chapter.", input="Acute bronchitis"),
        ),
        (("  Translate to French.\n", "  heart failure \n"),
         _TEMPLATE_WITH_INPUT.format(instruction="Translate to French.", input="heart failure")),
        (("List two symptoms.", ""), _TEMPLATE.format(instruction="List two symptoms.")),
        (("List two symptoms.", "   \n"), _TEMPLATE.format(instruction="List two symptoms.")),
        (("Line one\nline two", "a\nb"), _TEMPLATE_WITH_INPUT.format(instruction="Line one\nline two", input="a\nb")),
    ]
    for args, expected in cases:
        received = format_prompt(*args)
        call = f"format_prompt({', '.join(repr(a) for a in args)})"
        assert isinstance(received, str), f"{call}: expected a str, received {_describe(received)}"
        if received == expected:
            continue
        if received.rstrip("\n") == expected.rstrip("\n"):
            cause = "the prompt must end with '### Response:' and exactly one newline, so the response follows directly"
        elif "### Input:" in received and "### Input:" not in expected:
            cause = "an empty (or whitespace-only) input leaves out the whole '### Input:' section"
        elif received.replace(" ", "").replace("\n", "") == expected.replace(" ", "").replace("\n", ""):
            cause = "the whitespace differs: strip the arguments, and separate the sections by one blank line"
        else:
            cause = "fill PROMPT_TEMPLATE or PROMPT_WITH_INPUT_TEMPLATE with str.format"
        raise AssertionError(f"{call}: expected {expected!r}, received {received!r}: {cause}")

    for bad in ("", "  \n"):
        _expect_error(lambda: format_prompt(bad, "some input"), ValueError, f"format_prompt({bad!r}, 'some input')",
                      "an empty instruction gives an example without a task")


def _bytes_encode(text: str) -> list[int]:
    """Byte-level tokenizer with ids shifted by 3, so that ids 0-2 stay free for special tokens."""
    return [byte + 3 for byte in text.encode("utf-8")]


def _merging_encode(text: str) -> list[int]:
    """Encode text like a BPE tokenizer whose ids depend on context: 'ab' becomes the single token 2000."""
    ids, i = [], 0
    while i < len(text):
        if text.startswith("ab", i):
            ids.append(2000)
            i += 2
        else:
            ids.append(ord(text[i]) + 3)
            i += 1
    return ids


def _expected_example(prompt_ids, response_ids, max_length, pad_id, eos_id):
    ids = (prompt_ids + response_ids + [eos_id])[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + response_ids + [eos_id])[:max_length]
    n_padding = max_length - len(ids)
    return {
        "input_ids": ids + [pad_id] * n_padding,
        "attention_mask": [1] * len(ids) + [0] * n_padding,
        "labels": labels + [IGNORE_INDEX] * n_padding,
    }


@_preserve_rng
def check_build_sft_example(build_sft_example) -> None:
    """Check input ids, attention mask and labels on padded, truncated and EOS-as-padding examples."""
    prompt = _TEMPLATE.format(instruction="Name the chapter of I10.")
    cases = [
        ("padded", prompt, "Chapter 9", _bytes_encode, 80, 0, 1),
        ("padding id equal to the EOS id, as in GPT-2", prompt, "Chapter 9", _bytes_encode, 80, 2, 2),
        ("cut inside the response", prompt, "Diseases of the circulatory system", _bytes_encode, 70, 0, 1),
        ("cut exactly before the EOS", "Q: ", "abc", _bytes_encode, 6, 0, 1),
        ("exactly max_length with its EOS", "Q: ", "abc", _bytes_encode, 7, 0, 1),
        ("empty response", "Q: ", "", _bytes_encode, 6, 0, 1),
        ("a tokenizer that would merge 'a' + 'b' across the boundary", "xa", "bc", _merging_encode, 8, 0, 1),
    ]
    for name, prompt_text, response, encode, max_length, pad_id, eos_id in cases:
        call = (f"build_sft_example({prompt_text[:20]!r}..., {response!r}, encode, max_length={max_length}, "
                f"pad_id={pad_id}, eos_id={eos_id}) [{name}]")
        expected = _expected_example(encode(prompt_text), encode(response), max_length, pad_id, eos_id)
        received = build_sft_example(prompt_text, response, encode, max_length, pad_id, eos_id)
        assert isinstance(received, dict), f"{call}: expected a dict, received {_describe(received)}"
        assert set(received) == set(expected), (
            f"{call}: expected the keys {sorted(expected)}, received {sorted(received)}"
        )
        for key in ("input_ids", "attention_mask", "labels"):
            value = received[key]
            assert isinstance(value, torch.Tensor), f"{call}: {key} must be a tensor, received {_describe(value)}"
            assert tuple(value.shape) == (max_length,), (
                f"{call}: {key} must have shape ({max_length},), received {_describe(value)}. Pad or cut to max_length."
            )
            assert value.dtype == torch.long, (
                f"{call}: {key} must have dtype torch.long (embedding lookups and cross_entropy need integer ids), "
                f"received {_describe(value)}"
            )
            got = value.tolist()
            want = expected[key]
            if got == want:
                continue
            if key == "labels" and pad_id == eos_id and got == [IGNORE_INDEX if t == pad_id else t for t in want]:
                cause = ("the EOS label is -100: padding was found by comparing ids with pad_id, but here the EOS id "
                         "equals the padding id. Mark padding by position instead")
            elif key == "labels" and got == [t if (t != IGNORE_INDEX or i >= len(want)) else t for i, t in enumerate(got)] \
                    and got[: len(encode(prompt_text))] != want[: len(encode(prompt_text))]:
                cause = "prompt positions must have the label -100, because the prompt is given and not learned"
            elif key == "labels" and IGNORE_INDEX not in got[max_length - want.count(IGNORE_INDEX):] and want[-1] == IGNORE_INDEX:
                cause = "padding positions must have the label -100"
            elif key == "input_ids" and want[len(encode(prompt_text)) + len(encode(response)):].count(eos_id) > got.count(eos_id):
                cause = "the EOS id is missing after the response: the model must learn to stop"
            elif encode is _merging_encode:
                cause = "encode the prompt and the response separately, then concatenate the ids"
            else:
                cause = ("input_ids = prompt ids + response ids + [eos_id], cut to max_length, then padded; labels are "
                         "-100 on the prompt and the padding")
            raise AssertionError(f"{call}: {key} is wrong: {cause}. Expected {want}, received {got}")

    _expect_error(
        lambda: build_sft_example("Q: " * 10, "yes", _bytes_encode, 30, 0, 1), ValueError,
        "build_sft_example with a 30-token prompt and max_length=30",
        "no response token would be left, so the example teaches nothing",
    )


def _shifted_cross_entropy(logits, labels):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)


def _loss_hint(received, logits, labels, rtol, atol) -> str:
    """Name the likely mistake when the SFT loss is wrong."""
    V = logits.size(-1)

    def matches(value):
        return bool(torch.isclose(received.detach().double(), value.detach().double(), rtol=rtol, atol=atol))

    flat_logits, flat_labels = logits.reshape(-1, V), labels.reshape(-1)
    if matches(F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)):
        return "It is the loss without the shift: the logits at position t predict the label at t + 1."
    if matches(F.cross_entropy(logits[:, 1:].reshape(-1, V), labels[:, :-1].reshape(-1), ignore_index=IGNORE_INDEX)):
        return "The shift goes the wrong way: use logits[:, :-1] against labels[:, 1:]."
    per_token = F.cross_entropy(
        logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    if matches(per_token.sum() / per_token.numel()):
        return "It divides by every position, ignored ones included: average over the counted positions only."
    if matches(per_token.sum()):
        return "It is the sum: return the mean over the counted positions."
    return "Return F.cross_entropy(shifted logits, shifted labels, ignore_index=-100), a mean over counted positions."


@_preserve_rng
def check_sft_loss(sft_loss) -> None:
    """Compare `sft_loss(logits, labels)` and its gradient with the shifted cross_entropy(ignore_index=-100)."""
    gen = _generator()
    labels_cases = []
    B, T, V = 3, 7, 11
    labels = torch.randint(0, V, (B, T), generator=gen)
    labels[0, :3] = IGNORE_INDEX  # prompt
    labels[1, :5] = IGNORE_INDEX  # longer prompt
    labels[1, 6:] = IGNORE_INDEX  # padding
    labels[2, :2] = IGNORE_INDEX
    labels_cases.append(("prompts and padding of different lengths", labels))
    uneven = torch.full((2, 6), IGNORE_INDEX)
    uneven[0, 1:] = torch.randint(0, V, (5,), generator=gen)  # 5 counted positions
    uneven[1, 5] = 3  # 1 counted position
    labels_cases.append(("5 counted tokens in one sequence and 1 in the other", uneven))
    only_first = torch.full((2, 5), IGNORE_INDEX)
    only_first[:, 0] = 4  # position 0 is never predicted, so nothing counts after the shift
    labels_cases.append(("labels only at position 0, which no logit predicts", only_first))
    labels_cases.append(("every label -100 (every response was cut off)", torch.full((2, 5), IGNORE_INDEX)))

    for device in _devices():
        for dtype in (torch.float32, torch.float64) if device.type != "mps" else (torch.float32,):
            tol = tolerance(dtype, device)
            for name, labels in labels_cases:
                logits_cpu = (3.0 * torch.randn(*labels.shape, V, generator=gen, dtype=torch.float64)).to(dtype)
                where = f"sft_loss with {name} ({dtype}, {device.type})"
                logits = logits_cpu.clone().to(device).requires_grad_(True)
                received = sft_loss(logits, labels.to(device))
                assert isinstance(received, torch.Tensor) and received.dim() == 0, (
                    f"{where}: expected a scalar tensor, received {_describe(received)}"
                )
                counted = bool((labels[:, 1:] != IGNORE_INDEX).any())
                if not counted:
                    assert bool(torch.isfinite(received.detach()).all()), (
                        f"{where}: expected 0, received {_describe(received)}. With no counted label, cross_entropy's "
                        "mean divides 0 by 0: return logits.sum() * 0.0 instead."
                    )
                    assert received.item() == 0.0, f"{where}: expected 0, received {_describe(received)}"
                    assert received.requires_grad, (
                        f"{where}: the zero loss must still belong to the graph (logits.sum() * 0.0), so that "
                        "loss.backward() works on such a batch; received a tensor without grad."
                    )
                    received.backward()
                    assert logits.grad is not None and bool((logits.grad == 0).all()), (
                        f"{where}: the gradient of a batch without counted labels must be zero"
                    )
                    continue

                reference_logits = logits_cpu.clone().requires_grad_(True)
                expected = _shifted_cross_entropy(reference_logits, labels)
                assert bool(torch.isfinite(received.detach()).all()), f"{where}: received {_describe(received)}"
                _assert_close(received, expected, where, _loss_hint(received.cpu(), logits_cpu, labels, **tol), **tol)
                assert received.requires_grad, f"{where}: the loss does not require grad: do not detach or use .item()"
                received.backward()
                expected.backward()
                _assert_close(logits.grad, reference_logits.grad, f"{where}: gradient with respect to the logits",
                              "The value is right but the gradient is not: compute the loss with differentiable "
                              "tensor operations.", **tol)


# ---------------------------------------------------------------------------------------------------------
# Training and evaluation loop


class _Probe(nn.Module):
    """Linear classifier with dropout that records, at each forward call, its mode and whether grad is enabled."""

    def __init__(self, d_in: int = 2, n_classes: int = 2, p: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(p)
        self.linear = nn.Linear(d_in, n_classes)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.linear(self.dropout(x))


def _separable(n: int, gen: torch.Generator):
    labels = torch.randint(0, 2, (n,), generator=gen)
    centres = torch.tensor([[-2.0, 0.5], [2.0, -0.5]])
    return centres[labels] + 0.7 * torch.randn(n, 2, generator=gen), labels


def _batches(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _reference_sgd(model, loader, lr, epochs):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for inputs, targets in loader:
            loss = F.cross_entropy(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


@_preserve_rng
def check_train_evaluate(train, evaluate) -> None:
    """Check the loops on a separable problem: the loss falls, metrics match sklearn, modes and no_grad are right."""
    from sklearn.metrics import accuracy_score

    gen = _generator()
    x_train, y_train = _separable(120, gen)
    x_test, y_test = _separable(50, gen)
    train_loader = _batches(x_train, y_train, 16)  # 8 batches, the last one of 8 examples
    test_loader = _batches(x_test, y_test, 16)  # batches of 16, 16, 16 and 2 examples

    # evaluate: mode, gradients, metrics against sklearn and a mean over examples.
    torch.manual_seed(SEED)
    probe = _Probe()
    metrics = evaluate(probe, test_loader)
    assert isinstance(metrics, dict) and {"loss", "accuracy"} <= set(metrics), (
        f"evaluate must return a dict with the keys 'loss' and 'accuracy', received {_describe(metrics)}"
    )
    for key in ("loss", "accuracy"):
        assert isinstance(metrics[key], float), (
            f"evaluate(...)[{key!r}] must be a Python float, received {_describe(metrics[key])}: use .item() or float()"
        )
    assert probe.calls, "evaluate never called the model"
    assert not any(training for training, _ in probe.calls), (
        "evaluate ran the model in training mode, so dropout stayed active: call model.eval() first"
    )
    assert not any(grad for _, grad in probe.calls), (
        "evaluate ran the model with gradients enabled: wrap the loop in torch.no_grad()"
    )
    probe.eval()
    with torch.no_grad():
        logits = probe.linear(x_test)  # dropout is the identity in eval mode
    expected_accuracy = accuracy_score(y_test.numpy(), logits.argmax(dim=-1).numpy())
    expected_loss = F.cross_entropy(logits, y_test).item()
    assert math.isclose(metrics["accuracy"], expected_accuracy, rel_tol=1e-9, abs_tol=1e-12), (
        f"evaluate: expected accuracy {expected_accuracy:.6f} (sklearn.metrics.accuracy_score of the argmax "
        f"predictions), received {metrics['accuracy']:.6f}. Count argmax(logits) == targets over all examples and "
        "divide by the number of examples, not of batches."
    )
    batch_means = sum(F.cross_entropy(probe.linear(x), y).item() for x, y in test_loader) / len(test_loader)
    if not math.isclose(metrics["loss"], expected_loss, rel_tol=1e-5, abs_tol=1e-6):
        cause = ("it is the mean of the batch means, which over-weights the last batch of 2 examples: weight each "
                 "batch mean by its number of examples" if math.isclose(metrics["loss"], batch_means, rel_tol=1e-5)
                 else "return the mean loss over all held-out examples")
        raise AssertionError(f"evaluate: expected loss {expected_loss:.6f}, received {metrics['loss']:.6f}: {cause}")
    _expect_error(lambda: evaluate(_Probe(), []), ValueError, "evaluate(model, [])",
                  "an empty loader has no examples, and a metric of 0/0 must not pass silently")

    # train: mode, per-step losses, and the exact SGD trajectory of a reference loop.
    torch.manual_seed(SEED)
    model = nn.Linear(2, 2)
    reference = copy.deepcopy(model)
    model.eval()  # train must switch the mode itself
    probe = _Probe(p=0.0)
    probe.eval()
    losses = train(probe, train_loader, torch.optim.SGD(probe.parameters(), lr=0.1), epochs=1)
    assert probe.calls and all(training for training, _ in probe.calls), (
        "train ran the model in evaluation mode: call model.train() before the loop (a previous evaluate left it in eval mode)"
    )
    assert isinstance(losses, list) and len(losses) == len(train_loader), (
        f"train over 1 epoch of {len(train_loader)} batches must return {len(train_loader)} losses, "
        f"received {_describe(losses)}"
    )
    assert all(isinstance(loss, float) for loss in losses), (
        f"train must return Python floats (loss.item()), received {_describe(losses[0])}: keeping tensors keeps "
        "every step's autograd graph alive"
    )

    before = evaluate(model, test_loader)
    losses = train(model, train_loader, torch.optim.SGD(model.parameters(), lr=0.5), epochs=3)
    assert len(losses) == 3 * len(train_loader), (
        f"train with epochs=3 over {len(train_loader)} batches must return {3 * len(train_loader)} losses, received {len(losses)}"
    )
    _reference_sgd(reference, train_loader, lr=0.5, epochs=3)
    for (name, received), expected in zip(model.named_parameters(), reference.parameters()):
        _assert_close(
            received, expected, f"train: parameter {name} after 3 epochs of SGD",
            "The weights differ from a reference loop of zero_grad, backward and step once per batch: clear the "
            "gradients at every step (backward adds to .grad) and step once per batch.", rtol=1e-4, atol=1e-5,
        )
    after = evaluate(model, test_loader)
    assert after["loss"] < 0.5 * before["loss"], (
        f"on two well-separated clouds the held-out loss should fall below half its first value: before {before}, "
        f"after {after}"
    )
    assert after["accuracy"] >= 0.95, (
        f"on two well-separated clouds the held-out accuracy should reach 0.95: before {before}, after {after}"
    )

    for device in _devices()[1:]:
        model = nn.Linear(2, 2).to(device)
        train(model, train_loader, torch.optim.SGD(model.parameters(), lr=0.1))
        metrics = evaluate(model, test_loader)
        assert isinstance(metrics["loss"], float), (
            f"evaluate with a model on {device}: the loss must be a float, received {_describe(metrics['loss'])}"
        )


# ---------------------------------------------------------------------------------------------------------
# Parameter counts


@_preserve_rng
def check_count_parameters(count_parameters) -> None:
    """Check (trainable, total) on frozen, partly frozen and weight-tied models."""

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(10, 4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.embedding.weight  # shared (10, 4) table
            self.register_buffer("scale", torch.ones(4))

    mlp = nn.Sequential(nn.Linear(5, 3), nn.ReLU(), nn.Linear(3, 2))
    frozen = copy.deepcopy(mlp).requires_grad_(False)
    partly = copy.deepcopy(mlp)
    partly[0].bias.requires_grad_(False)
    tied = Tied()
    tied_frozen = Tied()
    tied_frozen.embedding.weight.requires_grad_(False)
    cases = [
        ("an MLP (5->3->2)", mlp, (26, 26)),
        ("the MLP with every parameter frozen", frozen, (0, 26)),
        ("the MLP with its first bias frozen", partly, (23, 26)),
        ("a model whose head shares the embedding table, plus a buffer", tied, (40, 40)),
        ("the tied model with the shared table frozen", tied_frozen, (0, 40)),
        ("a module without parameters", nn.ReLU(), (0, 0)),
    ]
    for name, model, expected in cases:
        received = count_parameters(model)
        assert isinstance(received, tuple) and len(received) == 2, (
            f"count_parameters must return a tuple (trainable, total), received {_describe(received)}"
        )
        if tuple(received) == expected:
            continue
        if received == expected[::-1]:
            cause = "the two numbers are swapped: return (trainable, total)"
        elif "shares" in name or "tied" in name:
            cause = "the shared table is counted twice, or the buffer counted: iterate over model.parameters()"
        elif received[0] == expected[1]:
            cause = "frozen parameters are counted as trainable: keep those with p.requires_grad"
        else:
            cause = "count scalars (p.numel()), not parameter tensors"
        raise AssertionError(f"count_parameters on {name}: expected {expected}, received {received}: {cause}")


# ---------------------------------------------------------------------------------------------------------
# LoRA


def _peft_model(model: nn.Module, target_modules, r: int, alpha: float):
    """Wrap a deep copy of model with peft's LoRA; peft's deprecation warnings are not the student's concern."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(target_modules), lora_dropout=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_peft_model(copy.deepcopy(model), config)


def _peft_lora_layers(peft_model) -> dict[str, nn.Module]:
    """Return peft's LoRA layers by the name of the module they replace in the original model."""
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return {name[len(prefix):]: module for name, module in peft_model.named_modules() if isinstance(module, LoraLayer)}


class _MLP(nn.Module):
    def __init__(self, d_in=12, d_hidden=20, n_out=5):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_hidden)
        self.head = nn.Linear(d_hidden, n_out)

    def forward(self, x):
        return self.head(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))


def _randomise_peft_b(peft_layers, gen) -> None:
    """peft starts B at zero, which would hide a wrong product; give it random values."""
    with torch.no_grad():
        for layer in peft_layers.values():
            weight = layer.lora_B["default"].weight
            weight.copy_(0.5 * torch.randn(weight.shape, generator=gen, dtype=torch.float64).to(weight.dtype))


def _copy_lora_weights(student_layer, peft_layer, where: str) -> None:
    A = peft_layer.lora_A["default"].weight
    B = peft_layer.lora_B["default"].weight
    for attribute, source in (("lora_A", A), ("lora_B", B)):
        target = getattr(student_layer, attribute, None)
        assert isinstance(target, nn.Parameter), (
            f"{where}: {attribute} must be an nn.Parameter, received {_describe(target)}"
        )
        assert tuple(target.shape) == tuple(source.shape), (
            f"{where}: {attribute} has shape {tuple(target.shape)}, expected {tuple(source.shape)} as in peft "
            "(lora_A is (r, d_in), lora_B is (d_out, r))"
        )
        with torch.no_grad():
            target.copy_(source)


@_preserve_rng
def check_lora_linear(cls) -> None:
    """Compare LoRALinear with a peft LoRA layer holding the same weights: init, forward, grads, merge, unmerge."""
    gen = _generator()
    _expect_error(lambda: cls(nn.Linear(4, 4), 0, 1), ValueError, "LoRALinear(nn.Linear(4, 4), r=0, alpha=1)",
                  "a rank below 1 has no low-rank update")
    _expect_error(lambda: cls(nn.Conv1d(4, 4, 1), 2, 4), TypeError, "LoRALinear(nn.Conv1d(4, 4, 1), r=2, alpha=4)",
                  "this layer wraps nn.Linear only")

    # Initialisation: B zero, A Kaiming-uniform with bound 1/sqrt(d_in), base frozen and shared.
    torch.manual_seed(SEED)
    base = nn.Linear(256, 32)
    weight_before = base.weight.detach().clone()
    layer = cls(base, 8, 16)
    where = "LoRALinear(nn.Linear(256, 32), r=8, alpha=16)"
    assert layer.base is base, f"{where}: self.base must be the given layer itself, not a copy"
    assert not base.weight.requires_grad and not base.bias.requires_grad, (
        f"{where}: the base weight and bias must be frozen (requires_grad False)"
    )
    assert torch.equal(base.weight, weight_before), f"{where}: the base weight changed during construction"
    for attribute, shape in (("lora_A", (8, 256)), ("lora_B", (32, 8))):
        value = getattr(layer, attribute, None)
        assert isinstance(value, nn.Parameter) and tuple(value.shape) == shape and value.requires_grad, (
            f"{where}: {attribute} must be a trainable nn.Parameter of shape {shape}, received {_describe(value)}"
        )
    assert bool((layer.lora_B == 0).all()), (
        f"{where}: lora_B must start at zero, so that the wrapped layer starts identical to the base; received "
        f"{_describe(layer.lora_B)}"
    )
    A = layer.lora_A.detach()
    bound = 1 / math.sqrt(256)
    assert float(A.abs().max()) <= bound * (1 + 1e-6), (
        f"{where}: lora_A has entries up to {float(A.abs().max()):.4g}, beyond the Kaiming-uniform bound "
        f"1/sqrt(d_in) = {bound:.4g}: use nn.init.kaiming_uniform_(A, a=math.sqrt(5)) on a (r, d_in) tensor"
    )
    # The standard deviation of U(-b, b) is b / sqrt(3); 2048 draws estimate it within a few per cent.
    assert abs(float(A.std()) - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3), (
        f"{where}: lora_A has standard deviation {float(A.std()):.4g}, expected about {bound / math.sqrt(3):.4g} "
        "(uniform on [-1/sqrt(d_in), 1/sqrt(d_in)]); a zero or constant A would leave B without gradient"
    )
    assert math.isclose(float(layer.scaling), 2.0), f"{where}: scaling must be alpha / r = 2.0, received {layer.scaling}"
    assert layer.merged is False, f"{where}: merged must start False, received {layer.merged!r}"
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    assert trainable == 8 * (256 + 32), (
        f"{where}: expected {8 * (256 + 32)} trainable parameters, r (d_in + d_out), received {trainable}"
    )

    # Forward and gradients against peft with the same weights.
    for device in _devices():
        for d_in, d_out, r, alpha, shape in [(12, 20, 4, 8, (5,)), (20, 20, 2, 3, (2, 3)), (20, 5, 1, 1, ())]:
            tol = tolerance(torch.float32, device)
            torch.manual_seed(SEED)
            model = _MLP()
            name = {12: "fc1", 5: "head"}.get(d_in if d_in == 12 else d_out, "fc2")
            peft_model = _peft_model(model, [name], r, alpha)
            peft_layer = _peft_lora_layers(peft_model)[name]
            _randomise_peft_b({name: peft_layer}, gen)
            student_base = copy.deepcopy(model.get_submodule(name))
            student = cls(student_base, r, alpha)
            where = f"LoRALinear(nn.Linear({d_in}, {d_out}), r={r}, alpha={alpha}) on {device.type}"
            _copy_lora_weights(student, peft_layer, where)
            student.to(device)
            x_cpu = torch.randn(*shape, d_in, generator=gen)
            expected = peft_layer(x_cpu)
            x = x_cpu.to(device)
            received = student(x)
            assert isinstance(received, torch.Tensor) and received.requires_grad, (
                f"{where}: the output does not require grad, so lora_A and lora_B would never train: do not detach "
                f"the update or compute it under torch.no_grad(); received {_describe(received)}"
            )
            hint = "forward must return base(x) + (alpha / r) * x @ lora_A.T @ lora_B.T"
            with torch.no_grad():
                unscaled = student_base(x) + x @ student.lora_A.T @ student.lora_B.T
            if tuple(received.shape) == tuple(expected.shape) and torch.allclose(received.detach(), unscaled, **tol) and alpha != r:
                hint = "the update is not scaled: multiply it by alpha / r"
            _assert_close(received, expected, f"{where}: output for x of shape {(*shape, d_in)}", hint, **tol)
            upstream = torch.randn(expected.shape, generator=gen)
            expected.backward(upstream)
            received.backward(upstream.to(device))
            for attribute, source in (("lora_A", peft_layer.lora_A["default"].weight),
                                      ("lora_B", peft_layer.lora_B["default"].weight)):
                grad = getattr(student, attribute).grad
                assert grad is not None, f"{where}: {attribute} received no gradient: is the update detached?"
                _assert_close(grad, source.grad, f"{where}: gradient of {attribute}",
                              "the output matches peft, so check that nothing is computed under no_grad", **tol)
            assert student_base.weight.grad is None, (
                f"{where}: the frozen base weight received a gradient: call requires_grad_(False) on it"
            )

    # Merge and unmerge.
    tol = tolerance(torch.float32)
    torch.manual_seed(SEED)
    base = nn.Linear(10, 6)
    W0 = base.weight.detach().clone()
    layer = cls(base, 3, 6)
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(6, 3, generator=gen))
    x = torch.randn(4, 10, generator=gen)
    with torch.no_grad():
        before = layer(x)
        delta = 2.0 * layer.lora_B @ layer.lora_A
        layer.merge()
        assert layer.merged is True, "after merge(), merged must be True"
        _assert_close(base.weight, W0 + delta, "LoRALinear.merge(): base.weight",
                      "merge must add (alpha / r) * lora_B @ lora_A, of shape (d_out, d_in), to base.weight in place",
                      **tol)
        _assert_close(layer(x), before, "LoRALinear after merge(): output",
                      "while merged, forward must return base(x) alone, or the update is counted twice", **tol)
        layer.merge()
        _assert_close(base.weight, W0 + delta, "LoRALinear.merge() called twice: base.weight",
                      "a second merge must change nothing: check self.merged first", **tol)
        layer.unmerge()
        assert layer.merged is False, "after unmerge(), merged must be False"
        _assert_close(base.weight, W0, "LoRALinear.unmerge(): base.weight",
                      "unmerge must subtract the same (alpha / r) * lora_B @ lora_A", **tol)
        layer.unmerge()
        _assert_close(base.weight, W0, "LoRALinear.unmerge() called twice: base.weight",
                      "unmerging an unmerged layer must change nothing", **tol)
        _assert_close(layer(x), before, "LoRALinear after merge() and unmerge(): output",
                      "after unmerge, forward must add the update again", **tol)
    assert not base.weight.requires_grad, "merge and unmerge must keep the base weight frozen"


class _Nested(nn.Module):
    """Blocks with the linear layers `proj` and `out_proj`: only the first ends in "proj" as a name part."""

    def __init__(self, d_model=10, n_blocks=2):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"proj": nn.Linear(d_model, d_model), "out_proj": nn.Linear(d_model, d_model)})
            for _ in range(n_blocks)
        )

    def forward(self, x):
        for block in self.blocks:
            x = x + block["out_proj"](torch.tanh(block["proj"](x)))
        return x


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    # Special-token ids inside the vocabulary, so that transformers does not warn about them.
    config = LlamaConfig(
        vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    torch.manual_seed(SEED)
    return LlamaForCausalLM(config).eval()


@_preserve_rng
def check_add_lora(add_lora, cls) -> None:
    """Compare add_lora with peft.get_peft_model on a tiny MLP and a tiny Llama: modules, counts, outputs."""
    gen = _generator()
    torch.manual_seed(SEED)
    mlp = _MLP()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers warns about deprecated defaults when a model is built
        llama = _tiny_llama()
    nested = _Nested()
    cases = [
        ("a 3-layer MLP", mlp, ["fc1", "head"], 4, 8, 12),
        ("blocks with the layers proj and out_proj", nested, ["proj"], 2, 8, 10),
        ("a tiny Llama", llama, ["q_proj", "v_proj"], 2, 4, None),
        ("a tiny Llama", llama, ["gate_proj", "down_proj", "o_proj"], 3, 3, None),
    ]
    for name, model, targets, r, alpha, d_in in cases:
        where = f"add_lora on {name} with target_modules={targets}, r={r}, alpha={alpha}"
        peft_model = _peft_model(model, targets, r, alpha)
        peft_layers = _peft_lora_layers(peft_model)
        _randomise_peft_b(peft_layers, gen)
        try:
            student = add_lora(copy.deepcopy(model), targets, r, alpha)
        except ValueError as error:
            raise AssertionError(
                f"{where} raised ValueError ({error}), but the modules {sorted(peft_layers)} match: look through "
                "every submodule with model.named_modules(), not only the direct children"
            ) from None
        assert isinstance(student, nn.Module), f"{where}: expected the model back, received {_describe(student)}"

        wrapped = sorted(n for n, m in student.named_modules() if isinstance(m, cls))
        assert wrapped == sorted(peft_layers), (
            f"{where}: expected LoRALinear at {sorted(peft_layers)}, found it at {wrapped}. Match the last part of "
            "each nn.Linear's dotted name against target_modules."
        )
        expected_trainable, expected_total = peft_model.get_nb_trainable_parameters()
        trainable = sum(p.numel() for p in student.parameters() if p.requires_grad)
        total = sum(p.numel() for p in student.parameters())
        assert trainable == expected_trainable, (
            f"{where}: {trainable} trainable parameters, expected {expected_trainable} as peft.get_peft_model "
            "gives: freeze every parameter of the model first, so that only lora_A and lora_B train"
        )
        assert total == expected_total, f"{where}: {total} parameters in all, expected {expected_total}"

        for module_name in wrapped:
            _copy_lora_weights(student.get_submodule(module_name), peft_layers[module_name], f"{where}: {module_name}")
        tol = tolerance(torch.float32)
        with torch.no_grad():
            if "Llama" in name:
                ids = torch.randint(3, 40, (2, 7), generator=gen)
                expected = peft_model(input_ids=ids).logits
                received = student(input_ids=ids).logits
            else:
                x = torch.randn(3, d_in, generator=gen)
                expected = peft_model(x)
                received = student(x)
        _assert_close(received, expected, f"{where}: model output with peft's LoRA weights copied in",
                      "the wrapped modules and the trainable count match, so check LoRALinear's forward", **tol)

    _expect_error(lambda: add_lora(copy.deepcopy(mlp), ["fc3"], 2, 4), ValueError,
                  "add_lora(model, ['fc3'], ...) on a model without fc3",
                  "no module matches, so the model would train nothing")


# ---------------------------------------------------------------------------------------------------------
# Adapters and prompt tuning


@_preserve_rng
def check_adapter(cls) -> None:
    """Check the bottleneck adapter: identity at start, count, forward with set weights, gradients, devices."""
    gen = _generator()
    torch.manual_seed(SEED)
    d_model, m = 24, 6
    adapter = cls(d_model, m)
    where = f"Adapter({d_model}, {m})"
    for attribute in ("down", "up"):
        assert isinstance(getattr(adapter, attribute, None), nn.Linear), f"{where}: {attribute} must be an nn.Linear"
    assert tuple(adapter.down.weight.shape) == (m, d_model) and tuple(adapter.up.weight.shape) == (d_model, m), (
        f"{where}: down must be nn.Linear({d_model}, {m}) and up nn.Linear({m}, {d_model}); their weights have "
        f"shapes {tuple(adapter.down.weight.shape)} and {tuple(adapter.up.weight.shape)}"
    )
    count = sum(p.numel() for p in adapter.parameters())
    assert count == 2 * d_model * m + d_model + m, (
        f"{where}: {count} parameters, expected 2 d m + d + m = {2 * d_model * m + d_model + m}"
    )
    assert bool((adapter.up.weight == 0).all()) and bool((adapter.up.bias == 0).all()), (
        f"{where}: up's weight and bias must start at zero, so that a new adapter is the identity; received "
        f"weight {_describe(adapter.up.weight)}"
    )
    assert not bool((adapter.down.weight == 0).all()), f"{where}: down must keep a random initialisation"
    h = torch.randn(2, 5, d_model, generator=gen)
    assert torch.equal(adapter(h), h), f"{where}: a new adapter must return its input unchanged"

    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen))
    for device in _devices():
        tol = tolerance(torch.float32, device)
        moved = copy.deepcopy(adapter).to(device)
        for shape in ((2, 5, d_model), (d_model,), (3, 2, 4, d_model)):
            h = torch.randn(*shape, generator=gen)
            expected = h + F.linear(F.gelu(F.linear(h, adapter.down.weight, adapter.down.bias)), adapter.up.weight,
                                    adapter.up.bias)
            received = moved(h.to(device))
            hint = "forward must be h + up(GELU(down(h))), with the exact (erf) GELU"
            relu = h + F.linear(F.relu(F.linear(h, adapter.down.weight, adapter.down.bias)), adapter.up.weight,
                                adapter.up.bias)
            if tuple(received.shape) == tuple(expected.shape) and torch.allclose(received.detach().cpu(), relu, **tol):
                hint = "the nonlinearity is ReLU: use nn.GELU()"
            elif tuple(received.shape) == tuple(expected.shape) and torch.allclose(received.detach().cpu() + h, expected, **tol):
                hint = "the residual connection is missing: add h to the update"
            _assert_close(received, expected, f"{where} on {device.type}: output for h of shape {shape}", hint, **tol)

    fresh = cls(d_model, m)
    fresh(torch.randn(3, d_model, generator=gen)).sum().backward()
    assert fresh.up.weight.grad is not None and bool((fresh.up.weight.grad != 0).any()), (
        f"{where}: at initialisation the up-projection must receive a non-zero gradient, or the adapter never trains"
    )


@_preserve_rng
def check_soft_prompt(cls) -> None:
    """Compare SoftPrompt with torch.cat: order, masks and their dtypes, init copy, gradients, devices."""
    gen = _generator()
    torch.manual_seed(SEED)
    P, C = 3, 8
    soft = cls(P, C)
    where = f"SoftPrompt({P}, {C})"
    parameters = list(soft.parameters())
    prompt = getattr(soft, "prompt", None)
    assert isinstance(prompt, nn.Parameter) and tuple(prompt.shape) == (P, C), (
        f"{where}: self.prompt must be an nn.Parameter of shape {(P, C)}, received {_describe(prompt)}"
    )
    assert len(parameters) == 1, f"{where}: the soft prompt must be the only parameter, found {len(parameters)}"
    assert float(prompt.detach().std()) > 0, f"{where}: a constant prompt makes all virtual tokens identical"
    assert float(prompt.detach().abs().max()) < 0.2, (
        f"{where}: the default prompt should come from N(0, 0.02²), received {_describe(prompt)}"
    )

    table = torch.randn(10, C, generator=gen)
    table_before = table.clone()
    soft_init = cls(P, C, init=table[2:5])
    assert torch.equal(soft_init.prompt.detach(), table_before[2:5]), (
        f"{where} with init: the prompt must start equal to init, received {_describe(soft_init.prompt)}"
    )
    with torch.no_grad():
        soft_init.prompt.add_(1.0)
    assert torch.equal(table, table_before), (
        f"{where} with init: training the prompt changed the embedding table it was initialised from: copy init "
        "with init.detach().clone()"
    )

    for device in _devices():
        module = copy.deepcopy(soft).to(device)
        for B, T, mask_dtype in ((2, 4, torch.long), (1, 1, torch.bool), (3, 5, None)):
            x_cpu = torch.randn(B, T, C, generator=gen)
            x = x_cpu.to(device)
            call = f"{where} on {device.type} with inputs_embeds of shape {(B, T, C)}"
            if mask_dtype is None:
                embeds, mask = module(x)
                expected_mask = torch.ones(B, P + T, dtype=torch.long)
                call += " and attention_mask=None"
            else:
                given = (torch.arange(T)[None, :] < torch.arange(T, T - B, -1).clamp(min=1)[:, None]).to(mask_dtype)
                embeds, mask = module(x, given.to(device))
                expected_mask = torch.cat([torch.ones(B, P, dtype=mask_dtype), given], dim=1)
                call += f" and a {mask_dtype} attention mask"
            expected = torch.cat([soft.prompt.detach().expand(B, P, C), x_cpu], dim=1)  # (B, P + T, C)
            hint = "return torch.cat([prompt expanded to (B, P, C), inputs_embeds], dim=1): the prompt goes first"
            if tuple(embeds.shape) == tuple(expected.shape) and torch.equal(
                embeds.detach().cpu(), torch.cat([x_cpu, expected[:, :P]], dim=1)
            ):
                hint = "the prompt is appended: prepend it, so that every input token can attend to it"
            _assert_close(embeds, expected, f"{call}: embeds", hint, rtol=0.0, atol=0.0)
            assert isinstance(mask, torch.Tensor) and tuple(mask.shape) == (B, P + T), (
                f"{call}: the mask must have shape {(B, P + T)}, received {_describe(mask)}"
            )
            assert mask.dtype == expected_mask.dtype and mask.device.type == device.type, (
                f"{call}: the mask must keep the dtype and device of attention_mask ({expected_mask.dtype} on "
                f"{device.type}; torch.long when it is None), received {_describe(mask)}"
            )
            assert torch.equal(mask.cpu(), expected_mask), (
                f"{call}: expected the mask {expected_mask.int().tolist()}, received {mask.int().tolist()}: prepend "
                f"{P} ones, since every input attends to the prompt"
            )

    module = copy.deepcopy(soft)
    embeds, _ = module(torch.randn(4, 2, C, generator=gen), torch.ones(4, 2, dtype=torch.long))
    embeds.sum().backward()
    assert module.prompt.grad is not None, f"{where}: the prompt received no gradient: do not detach it"
    assert torch.allclose(module.prompt.grad, torch.full((P, C), 4.0)), (
        f"{where}: after embeds.sum().backward() over a batch of 4, each prompt entry should have gradient 4 "
        f"(the prompt is shared by the batch), received {_describe(module.prompt.grad)}"
    )


# ---------------------------------------------------------------------------------------------------------
# Bag-of-embeddings classifier


@_preserve_rng
def check_bag_of_embeddings(cls) -> None:
    """Compare the classifier with nn.EmbeddingBag(mode="mean", padding_idx) and a Linear, same weights."""
    gen = _generator()
    vocab_size, d_model, n_classes = 30, 6, 4
    for pad_id in (0, 7):
        torch.manual_seed(SEED)
        model = cls(vocab_size, d_model, n_classes, pad_id=pad_id)
        where = f"BagOfEmbeddingsClassifier({vocab_size}, {d_model}, {n_classes}, pad_id={pad_id})"
        count = sum(p.numel() for p in model.parameters())
        expected_count = vocab_size * d_model + d_model * n_classes + n_classes
        assert count == expected_count, (
            f"{where}: {count} parameters, expected {expected_count}: an nn.Embedding and an nn.Linear head"
        )
        with torch.no_grad():
            # A non-zero padding row catches a mean that relies on the row being zero.
            model.embedding.weight.copy_(torch.randn(vocab_size, d_model, generator=gen))
        bag = nn.EmbeddingBag(vocab_size, d_model, mode="mean", padding_idx=pad_id)
        with torch.no_grad():
            bag.weight.copy_(model.embedding.weight)

        ids = torch.randint(0, vocab_size, (5, 6), generator=gen)
        ids[ids == pad_id] = (pad_id + 1) % vocab_size
        ids[1, 3:] = pad_id  # 3 words, then padding
        ids[2, 1:] = pad_id  # 1 word
        ids[3, :] = pad_id  # only padding: the mean is the zero vector
        ids[4, 2] = pad_id  # padding id in the middle still counts as padding
        for device in _devices():
            tol = tolerance(torch.float32, device)
            moved = copy.deepcopy(model).to(device)
            received = moved(ids.to(device))
            with torch.no_grad():
                expected = model.head(bag(ids))  # (B, K)
            hint = "average the embeddings of the non-padding positions only: sum(mask * e) / max(1, sum(mask))"
            if tuple(received.shape) == tuple(expected.shape):
                if not bool(torch.isfinite(received.detach()).all()):
                    hint = "a row of only padding gives 0/0 = NaN: clamp the number of words to at least 1"
                else:
                    with torch.no_grad():
                        plain_mean = model.head(model.embedding(ids).mean(dim=1))
                    if torch.allclose(received.detach().cpu(), plain_mean, **tol):
                        hint = "the mean includes the padding positions: mask them out and divide by the number of words"
            _assert_close(received, expected, f"{where} on {device.type}: logits", hint, **tol)

        received = model(ids)
        received.sum().backward()
        grad = model.embedding.weight.grad
        assert grad is not None, f"{where}: the embedding table received no gradient"
        assert bool((grad[pad_id] == 0).all()), f"{where}: the padding row received a gradient: mask padding out"
