"""Fusing q/k/v at inference must not detach the parameters an optimizer holds (evaluate, then train)."""

import torch

import cove


def test_optimizer_keeps_training_the_used_weights_after_an_inference_pass():
    config = cove.AutoConfig.for_model(
        "bert",
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
    )
    torch.manual_seed(0)
    model = cove.AutoModel.from_config(config)
    params_before = {id(p) for p in model.parameters()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ids = torch.tensor([[1, 2, 3, 4]])
    model.eval()
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state.clone()  # fuses
    assert {id(p) for p in model.parameters()} == params_before
    model.train()
    model(input_ids=ids).last_hidden_state.pow(2).sum().backward()
    opt.step()
    model.eval()
    with torch.no_grad():
        fused = model(input_ids=ids).last_hidden_state
    with torch.enable_grad():
        unfused = model(input_ids=ids).last_hidden_state.detach()
    assert not torch.allclose(fused, before)  # the update reached the weights the model uses
    torch.testing.assert_close(fused, unfused, atol=1e-6, rtol=0)
