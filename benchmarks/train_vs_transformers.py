"""Time one pretraining step of t5kit and of transformers on the same weights and batch.

Both models start from the same randomly initialised weights (transformers' T5 converted through
t5kit's key table). Each step is a forward pass, cross entropy over the targets, a backward pass
and an AdamW update. The two libraries alternate step by step, so load from other processes hits
both alike. The script prints a Markdown table with median step time, encoder tokens/s and the
ratio; it also checks that the first losses agree.

    python benchmarks/train_vs_transformers.py --preset t5-small --batch 8 --steps 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import T5Config, T5ForConditionalGeneration

from t5kit.config.model import load_model_config
from t5kit.convert.hf_config import config_to_hf
from t5kit.convert.hf_keys import key_table
from t5kit.model import T5, shift_right


def build_pair(preset: str) -> tuple[T5, T5ForConditionalGeneration]:
    """Return a t5kit model and a transformers model with identical weights, dropout off."""
    config = load_model_config(preset, {"dropout_rate": 0.0})
    oracle = T5ForConditionalGeneration(T5Config(**config_to_hf(config, "float32")))
    model = T5(config)
    weights = oracle.state_dict()
    state = {ours: weights[theirs].clone() for theirs, ours in key_table(config).items()}
    if not config.tie_word_embeddings:
        state["lm_head.weight"] = oracle.lm_head.weight.detach().clone()
    model.load_state_dict(state, strict=False)
    return model.train(), oracle.train()


def timed_step(step, optimizer) -> tuple[float, float]:
    start = time.perf_counter()
    loss = step()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start, loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="t5-small", help="model preset of the T5, v1.1 or mT5 family")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--input-len", type=int, default=512, help="encoder tokens per sequence")
    parser.add_argument("--target-len", type=int, default=114, help="decoder tokens per sequence")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per library, after one warm-up step")
    parser.add_argument("--bf16", action="store_true", help="run under bf16 autocast")
    args = parser.parse_args()

    torch.manual_seed(0)
    model, oracle = build_pair(args.preset)
    vocab = model.config.vocab_size
    input_ids = torch.randint(3, vocab, (args.batch, args.input_len))
    labels = torch.randint(3, vocab, (args.batch, args.target_len))
    decoder_input_ids = shift_right(labels)
    ours_optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    theirs_optimizer = torch.optim.AdamW(oracle.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16)

    def ours():
        with autocast:
            logits = model(input_ids, decoder_input_ids)
        return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten())

    def theirs():
        with autocast:
            return oracle(input_ids=input_ids, decoder_input_ids=decoder_input_ids, labels=labels).loss

    times = {"t5kit": [], "transformers": []}
    losses = {"t5kit": [], "transformers": []}
    for step in range(args.steps + 1):
        for name, function, optimizer in (("t5kit", ours, ours_optimizer), ("transformers", theirs, theirs_optimizer)):
            seconds, loss = timed_step(function, optimizer)
            losses[name].append(loss)
            if step > 0:
                times[name].append(seconds)

    print(f"preset {args.preset}, batch {args.batch}, {args.input_len} encoder / {args.target_len} decoder tokens, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, AdamW, {args.steps} timed steps")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, Python {platform.python_version()}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"first loss: t5kit {losses['t5kit'][0]:.5f}, transformers {losses['transformers'][0]:.5f}")
    print()
    print("| library | median step s | encoder tokens/s |")
    print("| --- | ---: | ---: |")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {args.batch * args.input_len / median:,.0f} |")
    print(f"\nspeed-up of t5kit over transformers: {medians['transformers'] / medians['t5kit']:.2f}x")


if __name__ == "__main__":
    main()
