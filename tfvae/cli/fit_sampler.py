"""`tfvae fit-sampler`: a latent sampler fitted after training, stored in a VAE run."""

import argparse

from tfvae import settings
from tfvae.training.sampler_fitting import SAMPLER_FILE
from tfvae.training.sampler_fitting import SamplerConfig
from tfvae.training.sampler_fitting import fit_sampler
from tfvae.training.sampler_fitting import format_sampler_metrics


def add_fit_sampler_parser(commands):
    parser = commands.add_parser(
        "fit-sampler",
        help="fit a sampler of a VAE run's latent codes to replace its N(0, I) prior in samples",
        description="Encodes the training split of a VAE run, fits a sampler to its codes (a "
        "Gaussian mixture on the posterior means, or a second VAE on the posterior samples), "
        "and stores it in the run: model.keras then samples through it (tfvae sample, the "
        f"exported `sample`), samples.png shows its draws, and RUN_DIR/{SAMPLER_FILE} holds its "
        "settings, the test codes' log-density under it and under N(0, I), and the sample "
        "quality (FID, KID, precision/recall) of prior and sampler samples. Fitting again "
        "replaces the sampler.",
        epilog="examples:\n"
        "  tfvae train --out runs/vae\n"
        "  tfvae fit-sampler runs/vae --sampler gmm --components 10\n"
        "  tfvae fit-sampler runs/vae --sampler two-stage --epochs 100\n"
        "  tfvae sample runs/vae --sampler prior --out prior.png   # the plain N(0, I) prior",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", help="a directory written by `tfvae train` with a VAE family")
    settings.add_arguments(parser, settings.settings_of(SamplerConfig))
    parser.add_argument("--quiet", action="store_true", help="No progress bars")
    parser.set_defaults(handler=run_fit_sampler)


def run_fit_sampler(args):
    config = SamplerConfig(**settings.values_from_args(args, settings.settings_of(SamplerConfig)))
    result = fit_sampler(args.run_dir, config, verbose=0 if args.quiet else "auto")
    print(format_sampler_metrics(config, result.metrics))
    print(f"sampler stored in {args.run_dir} (model.keras, samples.png, {SAMPLER_FILE})")
