import pytest
import torch
from conftest import TINY as BASE_TINY

from seqcopy.config import RunConfig
from seqcopy.core.train import Stopped, curriculum_stages, train

TINY = BASE_TINY.replace(padding=2, test_output_len=6, epochs=2, test_samples=20)
METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "train_copy_acc", "test_copy_acc", "test_seq_acc")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mlstm", "mgru"])
def test_same_config_and_seed_give_identical_metrics(cell):
    config = TINY.replace(cell=cell)
    first = [e.to_dict() for e in train(config).epochs]
    second = [e.to_dict() for e in train(config).epochs]
    for a, b in zip(first, second, strict=True):
        assert [a[m] for m in METRICS] == [b[m] for m in METRICS]


def test_another_seed_gives_other_metrics():
    a = train(TINY).epochs[-1]
    b = train(TINY.replace(seed=1)).epochs[-1]
    assert a.train_loss != b.train_loss


def test_reports_every_epoch_and_final_results():
    seen, progress = [], []
    result = train(TINY, on_epoch_state=lambda epoch, _after, _final: seen.append(epoch),
                   on_batch=lambda d, t: progress.append((d, t)))
    assert [e.epoch for e in seen] == [1, 2]
    assert progress[-1] == (4, 4) and len(progress) == 8
    for e in seen:
        for name in METRICS:
            assert 0 <= getattr(e, name) <= (20 if "loss" in name else 1)
        assert e.samples_per_sec > 0 and e.seconds > 0
    assert len(result.position_acc) == TINY.test_output_len
    assert [item["seq_len"] for item in result.length_acc] == [4, 8, 20]
    summary = result.summary()
    assert summary["epochs"] == 2 and summary["test_copy_acc"] == pytest.approx(seen[-1].test_copy_acc, abs=1e-6)


def test_should_stop_ends_early_keeping_finished_epochs():
    calls = {"n": 0}

    def stop_during_second_epoch():
        calls["n"] += 1
        return calls["n"] > 5  # 4 batches per epoch: stops in epoch 2

    after_first = {}

    def keep_weights(_epoch, after, _final):
        after_first.update({k: v.clone() for k, v in after.model.state_dict().items()})

    result = train(TINY, should_stop=stop_during_second_epoch, on_epoch_state=keep_weights)
    assert result.stopped and len(result.epochs) == 1
    assert result.position_acc == []  # no final evaluation for a stopped run
    # the half-trained second epoch is undone: the weights are those reported with epoch 1
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, after_first[name])


def test_a_diverging_run_stops_with_the_reason_and_keeps_its_finished_epochs(nan_loss_from_batch):
    after_first = {}

    def keep_first_weights(epoch, after, _final):
        if epoch.epoch == 1:
            after_first.update({k: v.clone() for k, v in after.model.state_dict().items()})

    nan_loss_from_batch(6)  # 4 batches per epoch: epoch 2, batch 2
    result = train(TINY.replace(epochs=3), on_epoch_state=keep_first_weights)
    assert result.stopped and result.diverged.startswith("training diverged at epoch 2, batch 2: the loss is nan")
    assert [e.epoch for e in result.epochs] == [1]
    # No NaN weights in the result: they are those reported with epoch 1.
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, after_first[name]) and torch.isfinite(tensor).all()


def test_weights_broken_by_an_epochs_last_step_are_caught_by_its_test(monkeypatch):
    import seqcopy.core.train as train_module

    real_evaluate, calls = train_module.evaluate, {"n": 0}

    def broken_after_first_epoch(model, *args, **kwargs):
        counts, per_position = real_evaluate(model, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] >= 2:  # as if epoch 2's last step had made the weights NaN
            counts.loss_sum = counts.loss_sum * float("nan")
        return counts, per_position

    monkeypatch.setattr(train_module, "evaluate", broken_after_first_epoch)
    result = train(TINY.replace(epochs=3))
    assert result.diverged.startswith("training diverged at the end of epoch 2: the test loss is")
    assert [e.epoch for e in result.epochs] == [1]


def test_a_finite_run_does_not_diverge():
    assert train(TINY).diverged is None


def test_on_epoch_state_may_stop_the_run():
    def stop(_epoch, _after, _final):
        raise Stopped

    assert len(train(TINY, on_epoch_state=stop).epochs) == 1


def test_invalid_config_refused_before_training():
    with pytest.raises(ValueError, match="hidden_size"):
        train(TINY.replace(hidden_size=0))


def test_curriculum_stages_double_up_to_the_task():
    config = RunConfig(train_seq_len=20, train_output_len=20, curriculum=True, curriculum_start=2)
    assert curriculum_stages(config) == [(2, 2), (4, 4), (8, 8), (16, 16), (20, 20)]
    ratio = RunConfig(train_seq_len=20, train_output_len=10, curriculum=True, curriculum_start=3)
    assert curriculum_stages(ratio) == [(6, 3), (12, 6), (20, 10)]
    assert curriculum_stages(config.replace(curriculum=False)) == [(20, 20)]
    steps = config.replace(curriculum_start=4, curriculum_step=5)
    assert curriculum_stages(steps) == [(4, 4), (9, 9), (14, 14), (19, 19), (20, 20)]


def test_curriculum_advances_when_the_stage_is_learnt():
    # the lowest threshold allowed: every epoch passes the bar, so the stage grows each epoch
    config = TINY.replace(train_seq_len=8, train_output_len=8, curriculum=True, curriculum_start=2,
                          curriculum_threshold=0.01, epochs=4)
    stages = [e.stage_output_len for e in train(config).epochs]
    assert stages == [2, 4, 8, 8]


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_learning_rate_schedules(schedule):
    config = TINY.replace(lr_schedule=schedule, warmup_epochs=1, epochs=3, lr=0.01)
    lrs = [e.lr for e in train(config).epochs]
    assert lrs[0] == pytest.approx(0.01)  # warm-up reaches the peak at its last step
    if schedule == "cosine":
        assert lrs[2] < lrs[1] < 0.01


def test_reference_cells_train_the_same_as_fused():
    fused = train(TINY.replace(cell="gru")).epochs[-1]
    reference = train(TINY.replace(cell="gru", fused=False)).epochs[-1]
    assert reference.train_loss == pytest.approx(fused.train_loss, rel=1e-4)


def test_clip_by_norm_trains():
    assert train(TINY.replace(clip="norm")).epochs[-1].train_loss > 0


def test_training_does_not_touch_global_rng_results():
    """The model's initial weights come from the seed, whatever ran before."""
    torch.manual_seed(123)
    a = train(TINY).epochs[-1].train_loss
    torch.manual_seed(999)
    b = train(TINY).epochs[-1].train_loss
    assert a == b


def test_fresh_data_draws_a_new_training_set_each_epoch_reproducibly(monkeypatch):
    import seqcopy.core.train as train_module

    drawn = []
    original = train_module.data.random_sequences

    def spy(rng, count, layout):
        inputs, targets = original(rng, count, layout)
        drawn.append(inputs)
        return inputs, targets

    monkeypatch.setattr(train_module.data, "random_sequences", spy)
    config = TINY.replace(fresh_data=True, epochs=3)
    first = [e.train_loss for e in train(config).epochs]
    sets = [d for d in drawn if d.shape == (TINY.train_samples, TINY.train_length)]
    assert len(sets) == 1 + 2  # the first set, then one per later epoch (the last needs none)
    assert not torch.equal(sets[0], sets[1]) and not torch.equal(sets[1], sets[2])
    drawn.clear()
    assert [e.train_loss for e in train(config).epochs] == first  # still reproducible


def test_training_flushes_denormals_to_zero():
    """A trained cell's saturated gates make float32 values under 1.2e-38, which the CPU computes
    many times more slowly (bench/bench_denormals.py): train() counts them as 0."""
    if not torch.set_flush_denormal(False):  # an earlier test's training left it on
        pytest.skip("this CPU cannot flush denormals (x86 with SSE3 can)")
    tiny_value = torch.tensor([1e-39], dtype=torch.float32)  # made with flushing off, or it is made 0
    assert (tiny_value * 1.5).item() != 0.0  # computed as a denormal
    train(TINY)
    assert (tiny_value * 1.5).item() == 0.0
