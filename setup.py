"""Installs ``locust_llm-help.pth`` next to the package (see ``locust_llm/help_hook.py``)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "locust_llm-help.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).with_name(PTH)), str(Path(self.build_lib) / PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), str(Path(self.build_lib) / PTH)]


setup(cmdclass={"build_py": BuildWithPth})
