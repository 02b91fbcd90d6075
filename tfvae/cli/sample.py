"""`tfvae sample`: a PNG grid of samples from the prior of a preset or a run."""

import argparse

from tfvae.presets import write_prior_samples
from tfvae.presets.sampling import MAX_SAMPLES
from tfvae.presets.sampling import SAMPLER_CHOICES


def add_sample_parser(commands):
    parser = commands.add_parser(
        "sample",
        help="decode samples from the prior of a preset or a run into a PNG grid",
        description="Draws z ~ N(0, I), decodes it with the model of a preset (a shipped name, "
        "a preset directory or a hub handle) or of a run directory, and writes the decoded "
        "examples as a grid; a run with a sampler fitted after training (tfvae fit-sampler) draws "
        "through it unless --sampler prior. Only a family with a prior (vae) can be sampled.",
        epilog="examples:\n"
        "  tfvae sample vae_dense_mnist5k --n 64 --out grid.png\n"
        "  tfvae sample saved_models/<run> --n 16 --seed 3 --out run_samples.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        metavar="PRESET_OR_RUN",
        help="a shipped preset name (tfvae presets), a preset directory, a hub handle "
        "(hf://owner/repo) or a run directory",
    )
    parser.add_argument(
        "--n", type=int, default=64, help=f"Samples, 1 to {MAX_SAMPLES}. Default: %(default)s"
    )
    parser.add_argument("--out", default="samples.png", help="PNG file. Default: %(default)s")
    parser.add_argument(
        "--seed", type=int, default=0, help="Seed of the draws. Default: %(default)s"
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace an existing --out")
    parser.add_argument(
        "--sampler",
        choices=SAMPLER_CHOICES,
        default=None,
        help="fitted: the latent sampler of tfvae fit-sampler (refused without one); prior: "
        "N(0, I) even when a sampler is fitted. Default: the fitted sampler if any, else the prior",
    )
    parser.set_defaults(handler=run_sample)


def run_sample(args):
    samples = write_prior_samples(
        args.source,
        args.out,
        n=args.n,
        seed=args.seed,
        overwrite=args.overwrite,
        sampler=args.sampler,
    )
    print(f"{len(samples)} samples from {args.source}: {args.out}")
