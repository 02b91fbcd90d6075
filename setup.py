import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "tfvae" / "__init__.py").read_text()).group(
    1
)
# What `import tfvae` and the `tfvae` command need.
INSTALL_REQUIRES = [
    "tensorflow==2.21.*",
    "tensorflow-probability==0.25.*",
    # TFP 0.25 refuses to import without tf-keras; tfvae uses only tfp.distributions.
    "tf-keras==2.21.*",
    "keras>=3.15,<4",
    "keras-tuner>=1.4.7,<2",
    "tensorboard>=2.21,<2.22",
    "tensorflow-datasets==4.9.10",
    "importlib_resources>=6",
    "scikit-learn>=1.5",
    "mlxtend>=0.23",
    "matplotlib>=3.8",
    "numpy>=1.26",
    # tfvae.data: image folders (Pillow), CSV and Parquet tables (pandas, pyarrow).
    "pillow>=10",
    "pandas>=2",
    "pyarrow>=14",
    "ai-edge-litert>=2.0",
]
# What the tests and the style checks need: `pip install -e .[dev]`.
EXTRAS_REQUIRE = {
    "dev": [
        "pytest>=8",
        # Runs the tests in one process per CPU (pyproject.toml's -n auto).
        "pytest-xdist>=3.5",
        # tests/test_fuzz.py: property-based bad inputs.
        "hypothesis>=6.100",
        "ruff>=0.6",
        # tests/test_notebooks.py executes the notebooks.
        "nbclient>=0.10",
        "nbformat>=5.10",
        "ipykernel>=6.29",
        # The tests parse models.config with TF Serving's own proto.
        "tensorflow-serving-api==2.21.*",
    ],
}

setup(
    name="tfvae",
    version=VERSION,
    description="Autoencoders and variational autoencoders for TensorFlow 2 / Keras 3",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfvae", "tfvae.*"]),
    # The sample-quality digit features' weights and metadata travel in the wheel.
    # The shipped presets (tfvae/presets/assets/<name>/: config, float16 weights, metadata,
    # assets/) travel in the wheel too.
    package_data={
        "tfvae.evaluation": ["assets/*.weights.h5", "assets/*.json"],
        "tfvae.presets": ["assets/*/*.json", "assets/*/*.weights.h5", "assets/*/assets/*"],
    },
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["tfvae=tfvae.cli:main"]},
)
