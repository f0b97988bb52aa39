"""The multiplicative cells' two forms in a whole model: chunked evaluation, determinism, the cost
table, and checkpoints from before the choice existed."""

import pytest
import torch

from seqcopy.config import RunConfig
from seqcopy.core import checkpoint
from seqcopy.core.benchmark import training_step
from seqcopy.core.cells import MGRUCell, MLSTMCell
from seqcopy.core.model import CopyModel
from seqcopy.core.train import run_in_chunks
from seqcopy.costs import parameter_count, recurrent_macs, saved_values

FORMS = [("mlstm", "krause"), ("mlstm", "input"), ("mgru", "krause"), ("mgru", "input")]


@pytest.mark.parametrize("cell, form", FORMS)
@pytest.mark.parametrize("threads", [1, 2])
def test_chunks_with_carried_state_equal_one_pass(cell, form, threads):
    """Evaluation in chunks (state carried across forward calls) equals one pass, on the fast
    path, with one thread and with the batch split across two."""
    torch.manual_seed(0)
    model = CopyModel(cell, embedding_size=5, hidden_size=8, mult_form=form).eval()
    x = torch.randint(0, 11, (9, 23))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            whole, _ = model(x)
            for chunk in (1, 6):
                torch.testing.assert_close(run_in_chunks(model, x, chunk), whole, atol=1e-5, rtol=1e-5)
            restarted = torch.cat([model(piece)[0] for piece in x.split(6, dim=1)], dim=1)
    finally:
        torch.set_num_threads(before)
    assert not torch.allclose(restarted, whole, atol=1e-4)  # the carried state is what matters


def _trained(cell: str, form: str) -> tuple[list[float], dict]:
    torch.manual_seed(7)
    model = CopyModel(cell, embedding_size=5, hidden_size=8, mult_form=form)
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randint(0, 11, (6, 12), generator=generator)
    step = training_step(model, inputs, torch.randint(0, 11, (6, 12), generator=generator))
    losses = []
    for _ in range(3):
        step()
        with torch.no_grad():
            logits, _ = model(inputs)
        losses.append(logits.sum().item())
    return losses, {name: tensor.clone() for name, tensor in model.state_dict().items()}


@pytest.mark.parametrize("cell, form", FORMS)
def test_training_is_deterministic(cell, form):
    """The same seed gives bit-for-bit the same training on the CPU, in both forms."""
    first_losses, first = _trained(cell, form)
    again_losses, again = _trained(cell, form)
    assert first_losses == again_losses
    for name, tensor in first.items():
        assert torch.equal(again[name], tensor), name
    assert len(set(first_losses)) == 3  # the steps do change the model


@pytest.mark.parametrize("cell, form", FORMS)
def test_cost_table_counts_the_forms_real_products(cell, form):
    embedding, hidden = 5, 7
    model = CopyModel(cell, embedding_size=embedding, hidden_size=hidden, mult_form=form)
    matrices = sum(p.numel() for p in model.recurrent.cell.parameters() if p.dim() == 2)
    assert recurrent_macs(cell, embedding, hidden, form) == matrices
    everything = sum(p.numel() for p in model.parameters())
    assert everything <= parameter_count(cell, embedding, hidden, form) <= everything + 2 * 5 * hidden
    assert saved_values(cell, embedding, hidden, form) > 0


def test_the_input_form_costs_its_plain_twin_and_the_factor():
    assert recurrent_macs("mlstm", 16, 128, "input") == recurrent_macs("lstm", 16, 128) + 16 * 16 + 16 * 128
    assert recurrent_macs("mgru", 16, 128, "input") == recurrent_macs("gru", 16, 128) + 16 * 16 + 16 * 128
    assert recurrent_macs("lstm", 16, 128, "input") == recurrent_macs("lstm", 16, 128)  # plain cells: one form


@pytest.mark.parametrize("cell, cell_class", [("mlstm", MLSTMCell), ("mgru", MGRUCell)])
def test_a_checkpoint_without_the_form_loads_as_krause(cell, cell_class):
    """Configs and checkpoints written before the form was recorded mean Krause's form."""
    import io

    config = RunConfig(cell=cell, embedding_size=5, hidden_size=8)
    torch.manual_seed(0)
    model = checkpoint.build_model(config)
    payload = torch.load(io.BytesIO(checkpoint.to_bytes(model, config)), weights_only=True)
    del payload["config"]["mult_form"]  # as a checkpoint saved before the choice existed
    old = io.BytesIO()
    torch.save(payload, old)
    loaded, loaded_config = checkpoint.from_bytes(old.getvalue())
    assert loaded_config.mult_form == "krause"
    assert type(loaded.recurrent.cell) is cell_class
    x = torch.randint(0, 11, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x)[0], model.eval()(x)[0], rtol=0, atol=0)
