"""Fine-tuning checkpoints: a run interrupted (by an error at step k, or SIGKILL during a
checkpoint save) and resumed ends with the same adapter as an uninterrupted run, bit for
bit: on one CPU with the same thread count every kernel is deterministic, the resumed run
replays the same data order and per-step RNG, and the checkpoint restores the exact f32
bits of the LoRA weights and AdamW moments (safetensors round-trips exactly). The tiny
model has attention dropout on, so a resume that lost the RNG would differ too."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import xlt
from xlt import finetune, models, tasks
from xlt.errors import TrainingError

SETTINGS = dict(steps=7, lr=3e-2, rank=4, targets=["attention", "mlp"], limit=6, batch_size=4, seed=3)
EVERY = 3  # 2 batches an epoch: checkpoints at step 3 (mid-epoch) and 6


@pytest.fixture(scope="module")
def tok():
    return xlt.assets.qwen_tokenizer()


@pytest.fixture(scope="module")
def sib():
    return tasks.sib200(languages=["arb_Arab"])


def tiny(tok):
    return models.tiny("llama", tokenizer=tok, attention_dropout=0.1).hf


def run(tok, sib, out=None, model=None, **kw):
    model = tiny(tok) if model is None else model
    args = SETTINGS | dict(checkpoint_every=EVERY) | kw
    return finetune.lora((model, tok), sib, ["arb_Arab"], out=out, progress=False, **args)


def adapter(out):
    return load_file(str(out / "adapter_model.safetensors"))


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tok, sib, tmp_path_factory):
    """An uninterrupted run; one without checkpoints must give the same adapter."""
    out = tmp_path_factory.mktemp("reference")
    run(tok, sib, out)
    plain = run(tok, sib, checkpoint_every=None)
    trained = {n: p for n, p in plain.hf.named_parameters() if p.requires_grad}
    ref = adapter(out)
    assert len(trained) == len(ref) > 0
    for n, p in trained.items():
        assert torch.equal(p.detach(), ref[n.replace(".default", "")]), n
    assert not (out / finetune.CHECKPOINTS).exists()  # removed once the adapter is saved
    return dict(adapter=ref, losses=losses(out))


def assert_same(out, reference):
    got = adapter(out)
    assert got.keys() == reference["adapter"].keys()
    for k, v in got.items():
        assert torch.equal(v, reference["adapter"][k]), k
    assert losses(out) == reference["losses"]


def nan_at(model, step):
    """A real forward hook that turns the embeddings to NaN on the ``step``-th forward."""
    calls = []

    def hook(module, inputs, output):
        calls.append(1)
        return output * float("nan") if len(calls) == step else output

    return model.model.embed_tokens.register_forward_hook(hook)


def interrupted(tok, sib, out, step=5):
    model = tiny(tok)
    handle = nan_at(model, step)
    with pytest.raises(TrainingError, match=f"non-finite loss \\(nan\\) at step {step} of 7"):
        run(tok, sib, out, model=model)
    handle.remove()
    assert sorted(p.name for p in (out / finetune.CHECKPOINTS).iterdir()) == ["step-00000003"]
    return model


def test_resume_after_an_error_at_step_5_gives_the_uninterrupted_adapter(tok, sib, tmp_path, reference):
    model = interrupted(tok, sib, tmp_path)
    assert not (tmp_path / "training.json").exists()
    run(tok, sib, tmp_path, model=model)
    assert json.loads((tmp_path / "training.json").read_text())["resumed_from_step"] == 3
    assert_same(tmp_path, reference)
    assert not (tmp_path / finetune.CHECKPOINTS).exists()


def test_sigkill_during_a_checkpoint_save_leaves_the_previous_one_and_resumes_exactly(
    tok, sib, tmp_path, reference
):
    """The child is SIGKILLed (an audit hook, on opening state.json of the step-6 save)
    after that checkpoint's tensors are written but before it is complete."""
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys, torch
            import xlt
            from xlt import finetune, models, tasks
            torch.set_num_threads({torch.get_num_threads()})

            def die(event, args):
                if event == "open" and str(args[0]).endswith(".tmp-step-00000006/state.json"):
                    os.kill(os.getpid(), signal.SIGKILL)

            sys.addaudithook(die)
            tok = xlt.assets.qwen_tokenizer()
            model = models.tiny("llama", tokenizer=tok, attention_dropout=0.1).hf
            finetune.lora((model, tok), tasks.sib200(languages=["arb_Arab"]), ["arb_Arab"],
                          out={str(tmp_path / "out")!r}, progress=False, checkpoint_every={EVERY},
                          **{SETTINGS!r})
            """
        )
    )
    child = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    folder = tmp_path / "out" / finetune.CHECKPOINTS
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-step-00000006", "step-00000003"]
    assert os.listdir(folder / ".tmp-step-00000006") == ["state.safetensors"]
    run(tok, sib, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "training.json").read_text())["resumed_from_step"] == 3
    assert_same(tmp_path / "out", reference)


def test_a_checkpoint_with_other_settings_is_refused(tok, sib, tmp_path):
    model = interrupted(tok, sib, tmp_path)
    for change, key in [
        ({"lr": 1e-2}, "lr"),
        ({"seed": 4}, "seed"),
        ({"steps": 9}, "steps"),
        ({"limit": 5}, "examples"),
    ]:
        with pytest.raises(xlt.ConfigError, match=f"other settings.*{key}: .*resume=False"):
            run(tok, sib, tmp_path, model=model, **change)
    other_base = models.tiny("llama", tokenizer=tok, attention_dropout=0.1, seed=1).hf
    with pytest.raises(xlt.ConfigError, match="other settings.*weights: "):
        run(tok, sib, tmp_path, model=other_base)
    assert (tmp_path / finetune.CHECKPOINTS / "step-00000003" / "state.json").is_file()  # left alone


def test_resume_false_starts_over(tok, sib, tmp_path, reference):
    model = interrupted(tok, sib, tmp_path)
    run(tok, sib, tmp_path, model=model, resume=False)
    assert json.loads((tmp_path / "training.json").read_text())["resumed_from_step"] == 0
    assert_same(tmp_path, reference)


def test_a_damaged_checkpoint_is_a_data_error(tok, sib, tmp_path):
    model = interrupted(tok, sib, tmp_path)
    weights = tmp_path / finetune.CHECKPOINTS / "step-00000003" / "state.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(xlt.DataError, match="step-00000003 is unreadable.*resume=False"):
        run(tok, sib, tmp_path, model=model)


def test_a_non_finite_gradient_stops_at_its_step_before_the_update(tok, sib):
    model = tiny(tok)
    calls = []

    def inf_grad(module, grad_output):
        calls.append(1)
        return tuple(g * float("inf") for g in grad_output) if len(calls) == 2 else grad_output

    model.model.layers[1].register_full_backward_pre_hook(inf_grad)
    with pytest.raises(TrainingError, match="non-finite gradient norm .* at step 2 of 7"):
        run(tok, sib, model=model)


def test_checkpoint_every_is_checked(tok, sib):
    with pytest.raises(xlt.ConfigError, match="checkpoint_every"):
        run(tok, sib, checkpoint_every=0)


def test_data_order_depends_on_seed_and_epoch_only():
    order = lambda seed, epoch: (s := finetune._Shuffle(50, seed), s.set_epoch(epoch), list(s))[2]  # noqa: E731
    assert order(0, 1) == order(0, 1) and sorted(order(0, 1)) == list(range(50))
    assert len({tuple(order(s, e)) for s in (0, 1) for e in (0, 1)}) == 4  # seed 1 epoch 0 != seed 0 epoch 1
    assert np.mean([order(0, 0)[i] == order(0, 1)[i] for i in range(50)]) < 0.2
