"""Speaker encoder behaviour on a tiny random WavLM + ECAPA-TDNN."""

import pytest
import torch
from hydra.utils import instantiate
from torch.nn import functional as F

from avcodecs.speaker import SpeakerAudioError, SpeakerEncoder
from tests.conftest import compose


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    torch.manual_seed(0)
    model = instantiate(compose("codec=speaker_wavlm_ecapa_tiny").codec)
    with torch.no_grad():  # a trained head's statistics and layer weights, not the init's 0 / 1 / uniform
        for module in model.head.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
        model.head.feature_weight.normal_()
    return model


def _speech(batch: int, samples: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, samples, generator=g)


@torch.inference_mode()
def test_embedding_shape_dtype_determinism(encoder):
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    wav = _speech(3, 16000)
    emb = encoder.embed(wav)
    assert emb.shape == (3, 16) and emb.dtype == torch.float32 and torch.isfinite(emb).all()
    torch.testing.assert_close(encoder.embed(wav), emb, rtol=0, atol=0)
    assert encoder.embed(wav[0]).shape == (1, 16)
    assert not torch.allclose(emb[0], emb[1])


@torch.inference_mode()
def test_padded_batch_gives_each_item_its_own_embedding(encoder):
    lengths = torch.tensor([16000, 9100, 4000])
    wav = _speech(3, 16000, seed=1) * (torch.arange(16000) < lengths[:, None])
    batched = encoder.embed(wav, lengths)
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(batched[i : i + 1], encoder.embed(wav[i : i + 1, :n]), rtol=1e-4, atol=1e-5)
    # without lengths, the padding counts as audio and changes the embedding
    assert not torch.allclose(encoder.embed(wav)[2], batched[2], atol=1e-3)


@torch.inference_mode()
def test_input_level_does_not_matter(encoder):
    """s3prl standardises each waveform (WavLM-Large was trained with normalize=True)."""
    wav = _speech(2, 12000, seed=2)
    torch.testing.assert_close(encoder.embed(4.0 * wav + 0.01), encoder.embed(wav), rtol=1e-4, atol=1e-5)


def test_too_short_audio_is_refused(encoder):
    with pytest.raises(SpeakerAudioError, match="at least 400 samples"):
        encoder.embed(torch.zeros(1, 399))
    with pytest.raises(SpeakerAudioError, match="per item"):
        encoder.embed(torch.randn(2, 800), torch.tensor([800, 100]))


@torch.inference_mode()
def test_last_hidden_state_is_transformers_final_output(encoder):
    """With all layer weight on the last state the mix is WavLMModel's (layer-normed) output."""
    wav = F.layer_norm(_speech(2, 8000, seed=3), (8000,))
    weights = encoder.head.feature_weight.clone()
    try:
        encoder.head.feature_weight.fill_(-1e4)
        encoder.head.feature_weight[-1] = 0.0
        mixed = encoder.mixed_hidden_states(wav, None)
    finally:
        encoder.head.feature_weight.copy_(weights)
    torch.testing.assert_close(mixed, encoder.wavlm(wav).last_hidden_state, rtol=1e-5, atol=1e-5)


def reference_ecapa(head, x):
    """UniSpeech's ECAPA_TDNN.forward after feature selection, transcribed op by op (no padding)."""
    def conv_relu_bn(m, x):
        return m.bn(F.relu(m.conv(x)))

    def se_res2(block, x):
        residual = x
        x = conv_relu_bn(block.Conv1dReluBn1, x)
        res2 = block.Res2Conv1dReluBn
        spx = torch.split(x, res2.width, 1)
        out, sp = [], None
        for i in range(len(res2.convs)):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = res2.bns[i](F.relu(res2.convs[i](sp)))
            out.append(sp)
        out.append(spx[len(res2.convs)])
        x = conv_relu_bn(block.Conv1dReluBn2, torch.cat(out, dim=1))
        se = torch.sigmoid(block.SE_Connect.linear2(F.relu(block.SE_Connect.linear1(x.mean(dim=2)))))
        return x * se.unsqueeze(2) + residual

    x = torch.nn.InstanceNorm1d(x.shape[1])(x + 1e-6)
    out1 = conv_relu_bn(head.layer1, x)
    out2 = se_res2(head.layer2, out1)
    out3 = se_res2(head.layer3, out2)
    out4 = se_res2(head.layer4, out3)
    out = F.relu(head.conv(torch.cat([out2, out3, out4], dim=1)))
    alpha = torch.softmax(head.pooling.linear2(torch.tanh(head.pooling.linear1(out))), dim=2)
    mean = torch.sum(alpha * out, dim=2)
    std = torch.sqrt((torch.sum(alpha * out**2, dim=2) - mean**2).clamp(min=1e-9))
    return head.linear(head.bn(torch.cat([mean, std], dim=1)))


@torch.inference_mode()
def test_head_matches_unispeech_formulas(encoder):
    features = torch.randn(2, 32, 40)
    torch.testing.assert_close(encoder.head(features), reference_ecapa(encoder.head, features), rtol=1e-4, atol=1e-5)
