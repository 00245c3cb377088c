"""The quickstart: tokenizer, pretraining on real text, prompt learning on SQuAD, EM/F1 table.

Stages, each writing into one run directory:

1. tokenizer/: the original T5 SentencePiece model (found locally, or downloaded once into the
   cache and checked against its sha256), or a vocabulary trained on the pretraining text.
2. data/: the distinct paragraphs of the SQuAD v1.1 train set (Wikipedia; none comes from a dev
   article), tokenized into train and validation indexed datasets.
3. pretrain/: span-corruption pretraining of a small T5 (`t5kit pretrain`), with its loss curve;
   `span_selection_rate` mixes in span selection (t5kit/data/span_selection.py).
4. prompt/<method>/: prompt learning (p-tuning by default) on a SQuAD train slice on top of the
   frozen pretrained model, scored on a dev slice with and without the learned prompt.
5. results.md and results.json: the EM/F1 table by task, metric and model size, and sample answers.

A scale (`SCALES`) fixes every size; `smoke` runs each stage for a few steps, `tiny` fits a
2-core CPU, and `nemo-220m` is the 220M recipe for one GPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from t5kit.errors import T5kitError

logger = logging.getLogger(__name__)

TOKENIZER_ENV = "T5KIT_TOKENIZER"
T5_SPIECE_URL = "https://huggingface.co/google-t5/t5-small/resolve/main/spiece.model"
T5_SPIECE_SHA256 = "d60acb128cf7b7f2536e8f38a5b18a05535c9e14c7a355904270e15b0945ea86"


@dataclass(frozen=True)
class Scale:
    """Every size of one quickstart run."""

    model: str
    """Model preset of the pretrained model."""
    model_overrides: dict[str, Any]
    """ModelConfig fields that replace the preset's."""
    pretrain_steps: int
    """Pretraining updates."""
    pretrain_batch_size: int
    """Sequences per pretraining update."""
    inputs_length: int
    """Encoder tokens per pretraining sequence."""
    pretrain_optimizer: str
    """Pretraining optimizer: adamw, adamw_scale or adafactor."""
    pretrain_lr: float
    """Peak learning rate of pretraining; the cosine schedule decays it to a tenth."""
    prompt_steps: int
    """Prompt-learning updates per method."""
    prompt_batch_size: int
    """Questions per prompt-learning update."""
    num_virtual_tokens: int
    """Virtual tokens of the prompt."""
    max_input_length: int
    """Encoder tokens per SQuAD input, virtual tokens included; longer contexts are truncated."""
    train_examples: int
    """SQuAD training questions for prompt learning (0: all)."""
    dev_examples: int
    """SQuAD dev questions scored (0: all)."""
    max_paragraphs: int = 0
    """Pretraining paragraphs used (0: all)."""
    eval_batch_size: int = 50
    """Questions decoded together."""
    prompt_lr: dict[str, float] = field(default_factory=dict)
    """Learning rate per tuning method; a method not listed uses TuneConfig's default."""
    span_selection_rate: float = 0.0
    """Fraction of pretraining examples that are span selection instead of span corruption."""


# The CPU scales tie the LM head to the embedding and rescale the decoder output (T5 v1.0 style).
# The untied v1.1 head starts with logits of standard deviation sqrt(d_model), a loss near 45
# nats, so a short run spends many of its steps shrinking them. The tied head starts near ln(vocab).
# They narrow `tiny` to d_model 128 and train with adamw_scale at 2e-2 (as nanoT5 does), which
# reaches a lower loss in a few minutes of CPU time than d_model 256 with plain AdamW.
_CPU_MODEL = {"d_model": 128, "d_kv": 32, "d_ff": 512, "tie_word_embeddings": True, "scale_decoder_output": True, "dropout_rate": 0.0}
_CPU_PROMPT_LR = {"p-tuning": 3e-3, "lora": 3e-3, "finetune": 1e-3}

SCALES = {
    "smoke": Scale(
        model="tiny",
        model_overrides={**_CPU_MODEL, "d_model": 32, "d_ff": 64, "num_layers": 2, "num_heads": 2, "d_kv": 16},
        pretrain_steps=4, pretrain_batch_size=4, inputs_length=64, pretrain_optimizer="adamw_scale", pretrain_lr=2e-2,
        prompt_steps=4, prompt_batch_size=4, num_virtual_tokens=4, max_input_length=128,
        train_examples=16, dev_examples=8, max_paragraphs=300, eval_batch_size=8, prompt_lr=_CPU_PROMPT_LR,
    ),
    "tiny": Scale(
        model="tiny",
        model_overrides=_CPU_MODEL,
        pretrain_steps=900, pretrain_batch_size=16, inputs_length=128, pretrain_optimizer="adamw_scale", pretrain_lr=2e-2,
        prompt_steps=200, prompt_batch_size=16, num_virtual_tokens=50, max_input_length=256,
        train_examples=3200, dev_examples=200, prompt_lr=_CPU_PROMPT_LR,
    ),
    # NOTE: the nemo-220m sizes follow the shape of NeMo's 220M recipe. This scale has not been run
    # end to end on a GPU yet, and only the smoke and tiny scales were measured.
    "nemo-220m": Scale(
        model="nemo-220m",
        model_overrides={},
        pretrain_steps=20000, pretrain_batch_size=128, inputs_length=512, pretrain_optimizer="adamw", pretrain_lr=1e-4,
        prompt_steps=3000, prompt_batch_size=32, num_virtual_tokens=100, max_input_length=512,
        train_examples=0, dev_examples=0, eval_batch_size=128,
    ),
}


@dataclass
class QuickstartOptions:
    """Choices of one quickstart run: its scale, the overrides of that scale, and where things are."""

    preset: str = "tiny"
    """Scale name: smoke, tiny or nemo-220m."""
    output: str = "runs/quickstart"
    """Run directory."""
    steps: int | None = None
    """Pretraining updates; None keeps the scale's."""
    prompt_steps: int | None = None
    """Prompt-learning updates; None keeps the scale's."""
    train_examples: int | None = None
    """SQuAD training questions; None keeps the scale's."""
    dev_examples: int | None = None
    """SQuAD dev questions; None keeps the scale's."""
    span_selection_rate: float | None = None
    """Fraction of pretraining examples that are span selection; None keeps the scale's."""
    methods: list[str] = field(default_factory=lambda: ["p-tuning"])
    """Tuning methods to run and compare: p-tuning, prompt-tuning, lora, finetune."""
    squad_dir: str | None = None
    """Folder with local SQuAD files; None uses $T5KIT_SQUAD_DIR, then the cache (downloading once)."""
    tokenizer: str | None = None
    """T5 spiece.model to use; None uses $T5KIT_TOKENIZER, then the cache (downloading once)."""
    train_tokenizer: int | None = None
    """Train a vocabulary of this many pieces on the pretraining text instead of using T5's."""
    device: str = "auto"
    """cpu, cuda, cuda:N or auto."""
    num_threads: int | None = None
    """CPU threads for torch; None keeps torch's default."""
    progress_bar: bool = True
    """Show tqdm progress bars."""

    def scale(self) -> Scale:
        """Return the preset's scale with the overrides applied."""
        if self.preset not in SCALES:
            raise T5kitError(f"unknown quickstart preset {self.preset!r}; choose one of {', '.join(SCALES)}")
        changes = {
            "pretrain_steps": self.steps,
            "prompt_steps": self.prompt_steps,
            "train_examples": self.train_examples,
            "dev_examples": self.dev_examples,
            "span_selection_rate": self.span_selection_rate,
        }
        return dataclasses.replace(SCALES[self.preset], **{k: v for k, v in changes.items() if v is not None})


@dataclass
class QuickstartResult:
    """Outputs of a quickstart run: the scores table, sample answers, timings and paths."""

    output: str
    """Run directory."""
    model: str
    """Name of the quickstart preset."""
    parameters: int
    """Parameters of the pretrained model."""
    pretrain_steps: int
    """Pretraining updates taken."""
    val_loss: float | None
    """Final pretraining validation loss in nats per target token."""
    dev_questions: int
    """Dev questions scored."""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """'no prompt' or a method -> {'exact_match', 'f1'} in percent, on the SQuAD dev slice."""
    samples: list[dict[str, str]] = field(default_factory=list)
    """Dev questions with the gold answer and each method's prediction."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each stage."""


def find_t5_tokenizer(path: str | os.PathLike | None = None) -> Path:
    """Return the T5 spiece.model: `path`, then $T5KIT_TOKENIZER, then the cache, downloading it once."""
    from t5kit.data.squad_download import squad_cache_dir

    for candidate, origin in ((path, "--tokenizer"), (os.environ.get(TOKENIZER_ENV), TOKENIZER_ENV)):
        if candidate:
            candidate = Path(candidate)
            if candidate.is_dir():
                candidate = candidate / "spiece.model"
            if not candidate.is_file():
                raise T5kitError(f"tokenizer {candidate} (from {origin}) not found; pass the path of a spiece.model")
            return candidate

    cached = squad_cache_dir().parent / "t5_tokenizer" / "spiece.model"
    if cached.is_file():
        return cached
    try:
        return _download(T5_SPIECE_URL, T5_SPIECE_SHA256, cached)
    except OSError as error:
        raise T5kitError(
            f"the T5 tokenizer is not in {cached} and its download failed ({error}). Fetch it on a machine with "
            f"network access (curl -L -o spiece.model {T5_SPIECE_URL}), then put it in {cached.parent}, set "
            f"{TOKENIZER_ENV} to its path, pass --tokenizer PATH, or train one with --train-tokenizer 8000"
        ) from error


def _download(url: str, sha256: str, target: Path) -> Path:
    """Download `url` to `target` through a temporary file, checking its sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, target)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as file, urllib.request.urlopen(url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                file.write(chunk)
        if digest.hexdigest() != sha256:
            raise T5kitError(f"{url} has sha256 {digest.hexdigest()}, expected {sha256}; the download is corrupted")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def write_paragraphs(squad_train: Path, output: Path, limit: int = 0) -> int:
    """Write each distinct paragraph of a SQuAD file as one line of `output`; return the count."""
    from t5kit.data.squad import load_json

    seen: set[str] = set()
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        for article in load_json(squad_train)["data"]:
            for paragraph in article["paragraphs"]:
                text = " ".join(paragraph["context"].split())
                if text in seen:
                    continue
                seen.add(text)
                handle.write(text + "\n")
                if limit and len(seen) >= limit:
                    return len(seen)
    return len(seen)


def prepare_tokenizer(options: QuickstartOptions, text: Path, directory: Path):
    """Copy the T5 tokenizer (or train one on `text`) into `directory` and return it loaded."""
    from t5kit.tokenizer import T5Tokenizer

    if options.train_tokenizer:
        from t5kit.tokenizer import TokenizerError
        from t5kit.tokenizer.training import train_tokenizer

        try:
            return train_tokenizer([text], directory, vocab_size=options.train_tokenizer, num_threads=options.num_threads)
        except TokenizerError as error:
            # SentencePiece's message ("Vocabulary size is smaller than required_chars. 5 vs 131.")
            # names its own flag, so it is rewritten in terms of --train-tokenizer.
            needed = re.search(r"required_chars\. \d+ vs (\d+)", str(error))
            if needed is None:
                raise
            raise T5kitError(
                f"--train-tokenizer {options.train_tokenizer} is fewer pieces than the {needed.group(1)} characters "
                f"of the text; use at least {needed.group(1)} (8000 suits the quickstart)"
            ) from None
    tokenizer = T5Tokenizer(find_t5_tokenizer(options.tokenizer))
    tokenizer.save(directory)
    return T5Tokenizer(directory)


def pretrain_config(
    scale: Scale, options: QuickstartOptions, data_prefix: Path, tokenizer: Path, vocab_size: int, output: Path
) -> dict:
    """Return the `t5kit pretrain` config of the scale as a dict."""
    from t5kit.config.model import pad_vocab_size

    warmup = max(1, scale.pretrain_steps // 10)
    optimizer = {"name": scale.pretrain_optimizer, "lr": scale.pretrain_lr}
    data = {
        "paths": [f"{data_prefix}_train"],
        "validation_paths": [f"{data_prefix}_val"],
        "inputs_length": scale.inputs_length,
    }
    if scale.span_selection_rate > 0:
        rate = scale.span_selection_rate
        denoisers = [{"name": "R", "kind": "span", "rate": 1 - rate}, {"name": "Q", "kind": "select", "rate": rate}]
        data.update(objective="ul2", ul2={"denoisers": denoisers}, tokenizer=str(tokenizer))
    return {
        "model": {"preset": scale.model, **scale.model_overrides, "vocab_size": pad_vocab_size(vocab_size)},
        "data": data,
        "train": {
            "output_dir": str(output),
            "max_steps": scale.pretrain_steps,
            "micro_batch_size": scale.pretrain_batch_size,
            "optimizer": optimizer,
            "schedule": {"name": "cosine", "warmup_steps": warmup, "min_lr": scale.pretrain_lr / 10},
            "precision": "bf16" if _uses_cuda(options.device) else "fp32",
            "device": options.device,
            "num_threads": options.num_threads,
            "log_every": max(1, min(25, scale.pretrain_steps // 10)),
            "val_every": 0,
            "val_batches": 10,
            "save_every": max(scale.pretrain_steps // 2, 1),
            "tensorboard": False,
            "progress_bar": options.progress_bar,
        },
    }


def _uses_cuda(device: str) -> bool:
    import torch

    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def tune_config(scale: Scale, options: QuickstartOptions, method: str, base: Path, tokenizer: Path, output: Path, baseline: bool):
    """Return the TuneConfig of one prompt-learning method at the scale."""
    from t5kit.config.core import build
    from t5kit.tune.config import TuneConfig

    data = {
        "base": str(base),
        "method": method,
        "tokenizer": str(tokenizer),
        "output_dir": str(output),
        "device": options.device,
        "precision": "bf16" if _uses_cuda(options.device) else "fp32",
        "num_threads": options.num_threads,
        "progress_bar": options.progress_bar,
        "log_every": max(1, min(10, scale.prompt_steps // 10)),
        "tasks": [{"name": "squad", "num_virtual_tokens": scale.num_virtual_tokens}],
        "data": {
            "squad_dir": options.squad_dir,
            "train_examples": scale.train_examples,
            "dev_examples": scale.dev_examples,
            "max_input_length": scale.max_input_length,
            "max_target_length": 24,
        },
        "optim": {
            "lr": scale.prompt_lr.get(method),
            "max_steps": scale.prompt_steps,
            "batch_size": scale.prompt_batch_size,
            "schedule": {"name": "linear", "warmup_steps": max(1, scale.prompt_steps // 10)},
        },
        "eval": {"batch_size": scale.eval_batch_size, "max_new_tokens": 16, "baseline": baseline, "samples": 5},
    }
    return build(TuneConfig, data)


def run_quickstart(options: QuickstartOptions) -> QuickstartResult:
    """Run every stage and return the scores; results.md and results.json are written to the run directory."""
    from t5kit.data.preprocess import preprocess
    from t5kit.data.squad_download import find_squad
    from t5kit.model import count_parameters, load_model
    from t5kit.train.trainer import pretrain
    from t5kit.tune import prompt_learn

    scale = options.scale()
    output = Path(options.output)
    if output.exists() and not output.is_dir():
        raise T5kitError(f"the run directory {output} is a file; pass another --output folder")
    output.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    # Data and tokenizer: SQuAD's train paragraphs are the pretraining text.
    started = time.perf_counter()
    paragraphs = output / "data" / "squad_train_paragraphs.txt"
    count = write_paragraphs(find_squad("train", options.squad_dir), paragraphs, scale.max_paragraphs)
    tokenizer = prepare_tokenizer(options, paragraphs, output / "tokenizer")
    logger.info("pretraining text: %d paragraphs of the SQuAD train set; tokenizer %r", count, tokenizer)
    prefix = output / "data" / "squad_train_paragraphs"
    preprocess([paragraphs], prefix, output / "tokenizer", progress=options.progress_bar)
    seconds["data"] = time.perf_counter() - started

    # Pretraining. The final model directory gets the tokenizer too, so it is self-contained.
    started = time.perf_counter()
    pretrained = pretrain(
        pretrain_config(scale, options, prefix, output / "tokenizer", tokenizer.vocab_size, output / "pretrain")
    )
    base = output / "pretrain" / "model"
    tokenizer.save(base)
    seconds["pretrain"] = time.perf_counter() - started

    result = QuickstartResult(
        str(output), options.preset, count_parameters(load_model(base)), pretrained.steps, pretrained.val_loss, 0
    )
    samples: dict[str, dict[str, str]] = {}
    for i, method in enumerate(options.methods):
        started = time.perf_counter()
        config = tune_config(scale, options, method, base, output / "tokenizer", output / "prompt" / method, i == 0)
        tuned = prompt_learn(config)
        seconds[method] = time.perf_counter() - started
        _collect(result, tuned, method, samples)
    result.samples = list(samples.values())
    result.seconds = seconds
    write_results(result, output)
    return result


def _collect(result: QuickstartResult, tuned, method: str, samples: dict[str, dict[str, str]]) -> None:
    """Add one tuning run's scores and sample predictions to the quickstart result."""
    scores = tuned.scores["squad"]
    if "baseline" in scores:
        result.scores["no prompt"] = scores["baseline"]
    result.scores[method] = scores["tuned"]
    folder = Path(tuned.output_dir) / "predictions"
    result.dev_questions = len(json.loads((folder / "squad.json").read_text(encoding="utf-8")))
    baseline = folder / "squad.baseline.json"
    baseline_predictions = json.loads(baseline.read_text(encoding="utf-8")) if baseline.is_file() else {}
    for sample in tuned.samples:
        entry = samples.setdefault(sample["id"], {"question": sample["question"], "gold": sample["gold"]})
        if sample["id"] in baseline_predictions:
            entry["no prompt"] = baseline_predictions[sample["id"]]
        entry[method] = sample["prediction"]


def model_size(parameters: int) -> str:
    """Format a parameter count as NVIDIA's tables do (220M, 3B)."""
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}B"
    return f"{parameters / 1e6:.0f}M" if parameters >= 1e7 else f"{parameters / 1e6:.1f}M"


def format_table(result: QuickstartResult) -> str:
    """Return the scores as a Markdown table with task, metric and model-size columns, one column per method."""
    columns = list(result.scores)
    size = f"{model_size(result.parameters)} ({result.model})"
    lines = [
        "| Task | Metric | Model size | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---:|" * len(columns),
    ]
    for key, metric in (("exact_match", "Exact Match"), ("f1", "F1")):
        values = " | ".join(f"{result.scores[column][key]:.2f}" for column in columns)
        lines.append(f"| SQuAD v1.1 (dev slice, {result.dev_questions} questions) | {metric} | {size} | {values} |")
    return "\n".join(lines)


def format_samples(result: QuickstartResult) -> str:
    """Return the sample questions with the gold answer and each method's prediction."""
    lines = []
    for sample in result.samples:
        lines.append(f"Q: {sample['question']}")
        lines.append(f"   gold: {sample['gold']}")
        for method in result.scores:
            if method in sample:
                lines.append(f"   {method}: {sample[method] or '(empty)'}")
    return "\n".join(lines)


def write_results(result: QuickstartResult, output: Path) -> None:
    """Write results.json and results.md into the run directory."""
    (output / "results.json").write_text(json.dumps(dataclasses.asdict(result), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    timings = ", ".join(f"{stage} {value:.0f} s" for stage, value in result.seconds.items())
    text = (
        f"# Quickstart results\n\n{format_table(result)}\n\n"
        f"Pretraining: {result.pretrain_steps} steps, final validation loss {_loss(result.val_loss)} nats per target token.\n"
        f"Wall time: {timings}.\n\n## Sample questions\n\n```\n{format_samples(result)}\n```\n"
    )
    (output / "results.md").write_text(text, encoding="utf-8")


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
