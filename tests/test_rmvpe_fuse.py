"""RMVPE's inference preparation (BatchNorm folding, in-place ReLU, channels-last) keeps the outputs."""

import numpy as np
import torch
from torch import nn

from core.features.f0.rmvpe import Rmvpe, RmvpeNet, fuse_for_inference


def _net_with_nontrivial_batchnorm() -> RmvpeNet:
    torch.manual_seed(0)
    net = RmvpeNet()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):  # default stats (0/1, weight 1) would hide a folding error
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return net.eval()


def test_fused_model_matches_plain_network():
    net = _net_with_nontrivial_batchnorm()
    mel = torch.from_numpy(np.random.default_rng(1).normal(-4.0, 2.0, (128, 64)).astype(np.float32))
    with torch.no_grad():
        expected = net(mel[None])[0].numpy()  # before fusing, which changes ``net`` in place
    model = Rmvpe(fuse_for_inference(net), "cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.net.unet.decoder.modules())
    assert all(m.inplace for m in model.net.modules() if isinstance(m, nn.ReLU))
    conv = model.net.unet.encoder.layers[0].conv[0].conv[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    got = model.salience_from_mel(mel)
    assert got.shape == (64, 360)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(expected - expected.mean(axis=0)).max() > 1e-3  # the check compares input-dependent outputs
