"""Writes the VLAE chapter's colour notebook (unexecuted); `reproduce` executes it.

Kept in the repo so the notebook's cells can be regenerated, reviewed and diffed as code.
"""

from notebook_cells import code, md, parameters, write

NAME = "vlae_colour"


CELLS = [
    md('''
# Colour kept in z: a grayscale-context decoder

**The paper's claim** (Chen et al. 2017, Sec. 3, Fig. 3(d)). What a VLAE's code keeps is decided by
what its autoregressive decoder *cannot* model from the pixels it has already generated: information
the decoder can read off x<sub>&lt;i</sub> costs fewer nats there than in z. So the decoder's context
can be shaped to choose what z carries. If the PixelCNN sees the earlier pixels only in **grayscale**,
it cannot copy colour from its neighbours, and the colour has to travel in z: decompressions
(x → z ~ q(z|x) → x′ ~ p(x|z)) keep the input's colours while local detail may change. A decoder
that sees the full RGB context can copy a colour once it has guessed it, and needs z less for it.

**What this notebook does.** It trains two VLAEs that differ only in the decoder's context — full
RGB, or the luminance of the earlier pixels — on the procedural 3D-shapes renderer (a floor, a wall
and an object, each one of ten hues); decompresses the same test images with both; and compares the
colour error of the decompressions and the nats each model puts into z, image by image. The paper's
figure is on CIFAR-10, which is not embedded here.
'''),
    parameters("the training seed of both models"),
    code('''
%matplotlib inline
import inspect

import torch

from dvae_core.claims import claims_frame, write_claims
from dvae_core.experiments import vlae
from dvae_core.models.pixelcnn import PixelCNN, PixelCNNConfig, luminance
from dvae_core.plots import image_grid
from dvae_core.runs import get_or_train_all

p = vlae.colour_profile(profile)
dataset, test_images = vlae.colour_data(p, seed)
print(p)
'''),
    md('''
## A decoder that sees colour only through luminance

With `vlae_config("gray", ...)` the PixelCNN's masked layers read the luminance of the
image (ITU-R BT.601, one channel) instead of its three channels; its output still has a logit for
each of R, G and B of every pixel, conditioned on z (through the same conditioning map as the
full-context model) and on the grayscale causal context. The masks, and so the receptive field,
are those of the full-context model.
'''),
    code('''
print(inspect.getsource(luminance))
print(inspect.getsource(PixelCNN.forward))
''', tags=["nbval-check-output"]),
    md('''
The check: the gradient of one output logit with respect to the R, G and B of an earlier pixel is
one number times the luminance weights (0.299, 0.587, 0.114), for every earlier pixel in the
receptive field; pixels at or after the output have zero gradient (the tests check this exactly,
for every pixel and channel, in `tests/test_vlae_colour.py`).
'''),
    code('''
torch.manual_seed(0)
net = PixelCNN(PixelCNNConfig(layers=3, channels=8), in_channels=3, gray_input=True)
x = torch.rand(1, 3, 6, 6, requires_grad=True)
net(x)[0, 0, 3, 3].backward()           # the red logit of pixel (3, 3)
grad = x.grad[0]
earlier = grad.abs().sum(0).nonzero()[0]
print("gradient w.r.t. (R, G, B) of pixel", tuple(earlier.tolist()), "divided by its sum:",
      (grad[:, earlier[0], earlier[1]] / grad[:, earlier[0], earlier[1]].sum()).numpy().round(4))
print("nonzero gradient on pixel (3, 3) or later:", bool(grad[:, 3, 3:].abs().sum() + grad[:, 4:].abs().sum() > 0))
''', tags=["nbval-check-output"]),
    md('''
**Likelihood.** Intensities in [0, 1] are modelled as they are for the chapter's binary images, with
one Bernoulli per channel: a cross-entropy on [0, 1] targets, the common practice for rescaled
intensities (it is not a normalised density on the continuum; the continuous Bernoulli would be).
The channels of a pixel are conditionally independent given the context and z (no R → G → B
ordering within a pixel). **Decompressions** feed back the decoder's *means*: each pixel is set to
its predicted intensity and the next pixel is predicted from those, so a decompression is a
deterministic function of z ~ q(z|x), and any change of colour comes from what z carries.

## The data

Procedural 3D shapes at the profile's resolution: three hues (floor, wall, object) from ten each,
with Lambertian shading; the same renderer draws the training batches on the fly and the fixed
test images.
'''),
    code('''
half = min(8, len(test_images) // 2)
image_grid([test_images[:half], test_images[half:2 * half]], ["", ""], title="3D-shapes test images");
''', figure="fig-vlae-colour-data", caption="Test images (procedural 3D shapes at the profile's resolution)."),
    code('''
configs = vlae.colour_configs(p, seed)
runs = get_or_train_all(configs, device=device)
print(f"{sum(r['reused'] for r in runs)} of {len(runs)} runs reused; {p.steps:,} steps of batch {p.batch_size} each")
'''),
    md('''
## Colour error and information in z

The colour error of a decompression is measured on the image's **mean chroma**: per pixel, RGB
minus its luminance (zero for every gray), averaged over the image; the error is the mean over
R, G, B of the absolute difference between input and decompression, averaged over the
decompressions of the image. Luminance is removed because both decoders see it: what differs
between them is colour. The mean-RGB error (brightness included) is shown beside it. Known cases:
'''),
    code('''
red, gray = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), torch.tensor([0.299] * 3).view(1, 3, 1, 1)
print(f"red vs gray of the same luminance: {vlae.chroma_error(red, gray).item():.4f}   "
      f"(chroma (0.701, -0.299, -0.299) vs 0: mean 1.299/3 = 0.4330)")
dark, light = torch.full((1, 3, 1, 1), 0.2), torch.full((1, 3, 1, 1), 0.8)
print(f"dark vs light gray: chroma error {vlae.chroma_error(dark, light).item():.4f}, "
      f"mean-RGB error {vlae.mean_rgb_error(dark, light).item():.4f}")
''', tags=["nbval-check-output"]),
    code('''
results = {context: vlae.colour_error(run["model"], test_images, p.num_decompressions, seed, p.kl_samples)
           for context, run in zip(vlae.COLOUR_CONTEXTS, runs)}
table = vlae.colour_table(results)
table.round(4)
'''),
    code('''
shown = min(2, p.num_decompressions)
rows = [test_images[:half]]
labels = ["data"]
for context in vlae.COLOUR_CONTEXTS:
    rows += [out[:half] for out in results[context]["decompressions"][:shown]]
    labels += [f"{context}\\ncontext"] * shown
image_grid(rows, labels, title="Decompressions x → z ~ q(z|x) → x′ (pixel means)");
''', figure="fig-vlae-colour-decompressions", caption=(
        "Test images (top), their decompressions by the full-context VLAE, then by the grayscale-context VLAE. "
        "Each decompression draws z ~ q(z|x) and decodes it pixel by pixel with the decoder's mean intensities.")),
    code('''
vlae.plot_colour_errors(results["full"], results["gray"]);
''', figure="fig-vlae-colour-errors", caption=(
        "Per test image: colour (chroma) error of the decompressions (left) and KL in nats (right), "
        "full-context model on the x axis, grayscale-context model on the y axis; dashed: equality.")),
    md('''
## Verdict

Both halves of the claim are decided on the same test images, pairing each image's numbers under
the two models (gray − full): the colour error must be lower and the KL higher for the
grayscale-context model. *Reproduced* needs both median differences of the claimed sign and both
one-sided Wilcoxon signed-rank tests at p < 0.01; *not reproduced* if either median difference is
zero or of the other sign; *inconclusive* otherwise.
'''),
    code('''
claims = [vlae.colour_claim(results["full"], results["gray"])]
write_claims(claims, profile, "vlae_colour",
             extra={"table": table.reset_index().round(5).to_dict(orient="records"),
                    "resolution": p.resolution, "steps": p.steps, "test_images": p.test_images})
claims_frame(claims)
'''),
]


if __name__ == "__main__":
    write(NAME, CELLS)
