import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "tfvae" / "__init__.py").read_text()).group(
    1
)
REQUIREMENTS = [
    line.strip()
    for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip()
    and not line.startswith("#")
    and not line.startswith(("pytest", "ruff", "tensorflow-serving-api"))
]

setup(
    name="tfvae",
    version=VERSION,
    description="Autoencoders and variational autoencoders for TensorFlow 2 / Keras 3",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfvae", "tfvae.*"]),
    python_requires=">=3.10",
    install_requires=REQUIREMENTS,
    entry_points={"console_scripts": ["tfvae=tfvae.cli:main"]},
)
