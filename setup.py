"""Build hook: a wheel carries the top-level recipes/ and data_manifests/ inside the package, as
divrob/_bundled/ (read by divrob.bundled through importlib.resources). Everything else is
configured in pyproject.toml; editable installs read the two folders from the checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED_DIRS = ("recipes", "data_manifests")


class build_py_with_bundled(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "divrob" / "_bundled"
        for name in BUNDLED_DIRS:
            shutil.copytree(Path(__file__).parent / name, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_bundled})
