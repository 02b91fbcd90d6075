"""`tfvae data pack`: a folder of images, an array file or a tfds data set as TFRecord shards."""

import argparse

from tfvae.data.images import COLOR_MODES
from tfvae.data.packing import pack


def add_data_parser(commands):
    parser = commands.add_parser(
        "data",
        help="prepare data sets: pack a folder, an .npz or a tfds data set as TFRecord shards",
        description="Data set tools. `tfvae data pack SRC OUT` writes SRC as TFRecord shards "
        "in tfvae's schema (docs/data.md), which --dataset 'OUT/*.tfrecord' reads.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    pack_parser = actions.add_parser(
        "pack",
        help="write SRC as TFRecord shards in the new directory OUT",
        description="Writes a folder of images (class sub-folders as labels), a .npz / .npy "
        "file or a tensorflow-datasets data set as TFRecord shards in the new directory OUT, "
        "atomically: OUT appears complete or not at all. Values are stored as they are "
        "(uint8 images as PNG), so --dataset 'OUT/*.tfrecord' loads the same arrays and labels.",
        epilog="examples:\n"
        "  tfvae data pack photos/ shards/ --shards 8 --image-size 64 64\n"
        "  tfvae data pack mine.npz shards/\n"
        "  tfvae data pack mnist shards/ --data-dir ~/tensorflow_datasets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pack_parser.add_argument(
        "source", metavar="SRC", help="a folder of images, a .npz / .npy file or a tfds name"
    )
    pack_parser.add_argument("out", metavar="OUT", help="a new (or empty) directory")
    pack_parser.add_argument(
        "--shards", type=int, default=1, help="How many files. Default: %(default)s"
    )
    pack_parser.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        metavar=("HEIGHT", "WIDTH"),
        default=None,
        help="Folders: centre-crop and resize every image to HEIGHT WIDTH",
    )
    pack_parser.add_argument(
        "--color-mode",
        choices=COLOR_MODES,
        default=None,
        help="Folders: rgb or grayscale. Default: grayscale when every image is, else rgb",
    )
    pack_parser.add_argument("--data-dir", default=None, help="tensorflow-datasets' data directory")
    pack_parser.set_defaults(handler=run_pack)


def run_pack(args):
    files = pack(
        args.source,
        args.out,
        shards=args.shards,
        image_size=args.image_size,
        color_mode=args.color_mode,
        data_dir=args.data_dir,
    )
    print(f"{args.source}: {len(files)} TFRecord shards in {args.out}")
