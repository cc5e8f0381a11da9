"""Shapes and the math of the models: decoders at several resolutions, SB coordinates, the KL."""

import math

import pytest
import torch

from dvae_core.models import VAE, ConvEncoder, DeconvDecoder, SpatialBroadcastDecoder, VAEConfig, gaussian_kl
from dvae_core.models.likelihoods import Bernoulli, FixedGaussian


@pytest.mark.parametrize("resolution", [16, 32, 64])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_spatial_broadcast_output_shape(resolution, padding):
    decoder = SpatialBroadcastDecoder(latent_dim=10, out_channels=3, resolution=resolution, channels=8,
                                      num_layers=3, padding=padding)
    assert decoder(torch.randn(5, 10)).shape == (5, 3, resolution, resolution)


@pytest.mark.parametrize("resolution", [32, 64])
def test_deconv_and_encoder_shapes(resolution):
    assert DeconvDecoder(6, 1, resolution, channels=8, hidden=16)(torch.randn(4, 6)).shape == (4, 1, resolution, resolution)
    mean, logvar = ConvEncoder(3, resolution, 6, channels=8, hidden=16)(torch.rand(4, 3, resolution, resolution))
    assert mean.shape == logvar.shape == (4, 6)


def test_resolution_must_be_power_of_two_times_four():
    with pytest.raises(ValueError, match="resolution"):
        ConvEncoder(1, 48, 4)


def test_spatial_broadcast_coordinates_span_minus_one_to_one():
    decoder = SpatialBroadcastDecoder(4, 1, 32, channels=4, num_layers=2, padding="same")
    x, y = decoder.coords[0]
    assert x.shape == (32, 32)
    assert x[0, 0] == -1 and x[0, -1] == 1 and y[0, 0] == -1 and y[-1, 0] == 1
    assert torch.all(x[:, 1:] > x[:, :-1]) and torch.all(y[1:] > y[:-1])


def test_spatial_broadcast_valid_padding_is_translation_equivariant_inside():
    # With 'valid' convs no zero-padding border exists: the decoder is a function of (z, x, y) only,
    # so two pixels with the same coordinates... differ only through x, y. A constant decoder input
    # (no z dependence) with coordinate weights zeroed must give a constant image.
    decoder = SpatialBroadcastDecoder(3, 1, 16, channels=4, num_layers=2, padding="valid")
    with torch.no_grad():
        decoder.convs[0].weight[:, 3:] = 0  # drop the coordinate channels
    image = decoder(torch.randn(1, 3))
    assert torch.allclose(image, image[0, 0, 0, 0].expand_as(image), atol=1e-6)


def test_gaussian_kl_known_values():
    assert gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).sum() == 0
    mean, logvar = torch.tensor([[1.0]]), torch.tensor([[math.log(4.0)]])
    # KL(N(1, 4) || N(0, 1)) = 0.5 (1 + 4 - 1 - log 4)
    assert torch.isclose(gaussian_kl(mean, logvar)[0, 0], torch.tensor(0.5 * (4 - math.log(4))))


def test_likelihoods_match_torch_distributions():
    x = torch.rand(2, 1, 4, 4)
    logits = torch.randn(2, 1, 4, 4)
    expected = -torch.distributions.Bernoulli(logits=logits).log_prob(x.round()).flatten(1).sum(1)
    assert torch.allclose(Bernoulli().nll(logits, x.round()), expected, atol=1e-5)
    mean = torch.rand(2, 1, 4, 4)
    expected = -torch.distributions.Normal(mean, 0.2).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(FixedGaussian(0.2).nll(mean, x), expected, atol=1e-4)


@pytest.mark.parametrize("decoder", ["deconv", "sb"])
def test_vae_loss_terms(decoder):
    model = VAE(VAEConfig(decoder=decoder, resolution=32, in_channels=1, encoder_channels=8, decoder_channels=8,
                          hidden=16, sb_layers=2, sb_padding="same"))
    terms = model.loss(torch.rand(3, 1, 32, 32), beta=4.0)
    assert set(terms) == {"loss", "recon", "kl"}
    assert torch.isclose(terms["loss"], terms["recon"] + 4.0 * terms["kl"])
    assert model.decode(torch.zeros(2, 10)).shape == (2, 1, 32, 32)


def test_unknown_decoder_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown decoder 'pixelcnn'"):
        VAE(VAEConfig(decoder="pixelcnn"))
